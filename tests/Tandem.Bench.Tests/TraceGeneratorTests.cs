using System.Text.Json;
using Tandem.Bench.Workloads;

namespace Tandem.Bench.Tests;

public class TraceGeneratorTests
{
    private static List<(double Ts, int In, int Out, long[] Ids)> Parse(IEnumerable<string> lines) =>
        [.. lines.Select(l =>
        {
            using var d = JsonDocument.Parse(l);
            var r = d.RootElement;
            return (r.GetProperty("timestamp").GetDouble(), r.GetProperty("input_length").GetInt32(), r.GetProperty("output_length").GetInt32(),
                r.GetProperty("hash_ids").EnumerateArray().Select(e => e.GetInt64()).ToArray());
        })];

    [Fact]
    public void Generate_IsSortedConsistentAndPrefixHeavy()
    {
        var options = new TraceGeneratorOptions { Requests = 800, Seed = 3 };
        var records = Parse(TraceGenerator.Generate(options));
        Assert.Equal(800, records.Count);
        Assert.Equal(records.Select(r => r.Ts).Order(), records.Select(r => r.Ts));
        foreach (var r in records)
        {
            // The hash ids cover the input exactly (a partial last block at most).
            Assert.Equal((r.In + options.BlockTokens - 1) / options.BlockTokens, r.Ids.Length);
            Assert.InRange(r.Out, options.OutputMinTokens, options.OutputMaxTokens);
            Assert.InRange(r.In, 1, options.MaxInputTokens);
        }
        var refs = records.Sum(r => r.Ids.Length);
        var distinct = records.SelectMany(r => r.Ids).Distinct().Count();
        Assert.True(1 - ((double)distinct / refs) > 0.5, $"reuse {1 - ((double)distinct / refs)}");
        // Multi-turn: some record's ids extend an earlier record's ids.
        var byFirst = records.GroupBy(r => string.Join(",", r.Ids.Take(9))).Count(g => g.Count() > 1);
        Assert.True(byFirst > 10);
        // Same seed, same trace.
        Assert.Equal(TraceGenerator.Generate(options).Take(50), TraceGenerator.Generate(options).Take(50));
    }

    [Fact]
    public void Generate_TracesLoadAsMooncakeRecords()
    {
        using var dir = new TempFile();
        var n = TraceGenerator.Write(dir.Path, new TraceGeneratorOptions { Requests = 50, Seed = 1 });
        Assert.Equal(50, n);
        Assert.Equal(50, TraceWorkload.Load(dir.Path).Count);
    }

    private sealed class TempFile : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"trace-{Guid.NewGuid():N}.jsonl");

        public void Dispose() => File.Delete(Path);
    }
}
