using Tandem.Bench.Load;
using Tandem.Bench.Workloads;

namespace Tandem.Bench.Tests;

public class WorkloadTests
{
    private static TraceWorkload Trace(PromptFormat format, int blockSize, params TraceRecord[] records) =>
        new(records, new PromptFactory(format, 1.0, 32000), blockSize, 1.0, seed: 3);

    [Fact]
    public void Trace_SharedLeadingHashIds_TokenPrefixesEqualForExactlyThoseBlocks()
    {
        const int block = 16;
        var workload = Trace(PromptFormat.TokenIds, block,
            new TraceRecord(0, 5 * block, 10, [1, 2, 3, 4, 5]),
            new TraceRecord(10, (4 * block) + 5, 10, [1, 2, 3, 9, 10]),
            new TraceRecord(20, 3 * block, 10, [7, 2, 3]));
        var requests = workload.Requests().ToList();
        var a = requests[0].TokenIds!;
        var b = requests[1].TokenIds!;
        var c = requests[2].TokenIds!;
        Assert.Equal(5 * block, a.Length);
        Assert.Equal((4 * block) + 5, b.Length); // the last block is cut to input_length
        Assert.Equal(a[..(3 * block)], b[..(3 * block)]);
        Assert.NotEqual(a[(3 * block)..(4 * block)], b[(3 * block)..(4 * block)]);
        Assert.NotEqual(a[..block], c[..block]); // different first id: nothing shared, even though ids 2 and 3 follow
        Assert.Equal(a[block..(3 * block)], c[block..(3 * block)]); // same id gives the same block content at any position
        Assert.Equal(TimeSpan.FromMilliseconds(10), requests[1].ScheduledAt);
        Assert.All(a, id => Assert.InRange(id, 1, 31999));
    }

    [Fact]
    public void Trace_SharedLeadingHashIds_TextPrefixesEqualForExactlyThoseBlocks()
    {
        const int block = 8;
        var workload = Trace(PromptFormat.Text, block,
            new TraceRecord(0, 4 * block, 10, [1, 2, 3, 4]),
            new TraceRecord(0, 4 * block, 10, [1, 2, 5, 6]));
        var requests = workload.Requests().ToList();
        var a = requests[0].Text!.Split(' ');
        var b = requests[1].Text!.Split(' ');
        Assert.Equal(4 * block, a.Length); // one word per token at --tokens-per-word 1
        Assert.Equal(a[..(2 * block)], b[..(2 * block)]);
        Assert.NotEqual(a[(2 * block)..(3 * block)], b[(2 * block)..(3 * block)]);
        var shared = string.Join(' ', a[..(2 * block)]);
        Assert.StartsWith(shared + " ", requests[1].Text!, StringComparison.Ordinal);
    }

    [Fact]
    public void Trace_SameSeed_IsDeterministicAcrossInstances()
    {
        var record = new TraceRecord(0, 40, 5, [11, 12, 13]);
        var first = Trace(PromptFormat.TokenIds, 16, record).Requests().Single().TokenIds;
        var second = Trace(PromptFormat.TokenIds, 16, record).Requests().Single().TokenIds;
        Assert.Equal(first, second);
    }

    [Fact]
    public void Trace_InputLongerThanBlocks_PadsWithOwnContent()
    {
        var workload = Trace(PromptFormat.TokenIds, 4, new TraceRecord(0, 10, 5, [1]), new TraceRecord(0, 10, 5, [1]));
        var requests = workload.Requests().ToList();
        Assert.Equal(10, requests[0].TokenIds!.Length);
        Assert.Equal(requests[0].TokenIds![..4], requests[1].TokenIds![..4]);
        Assert.NotEqual(requests[0].TokenIds![4..], requests[1].TokenIds![4..]);
    }

    [Fact]
    public void Load_MooncakeFile_ReadsRecordsAndSharing()
    {
        var path = Path.Combine(Path.GetTempPath(), $"trace-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path,
        [
            "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 20, \"hash_ids\": [0, 1]}",
            "",
            "{\"timestamp\": 1500, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [0, 2]}",
        ]);
        try
        {
            var records = TraceWorkload.Load(path);
            Assert.Equal(2, records.Count);
            Assert.Equal(1500, records[1].TimestampMs);
            Assert.Equal([0L, 2L], records[1].HashIds);
            var requests = new TraceWorkload(records, new PromptFactory(PromptFormat.TokenIds, 1, 32000), 512, speedup: 3, seed: 0).Requests().ToList();
            Assert.Equal(TimeSpan.FromMilliseconds(500), requests[1].ScheduledAt);
            Assert.Equal(requests[0].TokenIds![..512], requests[1].TokenIds![..512]);
            Assert.Equal(3, requests[1].OutputTokens);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Load_MalformedLine_NamesTheLine()
    {
        var path = Path.Combine(Path.GetTempPath(), $"trace-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, ["{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [0]}", "{not json"]);
        try
        {
            var e = Assert.Throws<ArgumentException>(() => TraceWorkload.Load(path));
            Assert.Contains(":2:", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Synthetic_LengthsWithStddev_AreNormalAndClamped()
    {
        var prompts = new PromptFactory(PromptFormat.TokenIds, 1.0, 32000);
        var requests = new SyntheticWorkload(prompts, 1, 100, 30, 50, 80).Requests().Take(2000).ToList();
        var inputs = requests.Select(r => (double)r.TokenIds!.Length).ToList();
        Assert.InRange(inputs.Average(), 95, 105);
        var std = Math.Sqrt(inputs.Sum(v => (v - inputs.Average()) * (v - inputs.Average())) / inputs.Count);
        Assert.InRange(std, 26, 34);
        Assert.All(requests, r => Assert.True(r.OutputTokens >= 1));
        Assert.Contains(requests, r => r.OutputTokens == 1); // clamped, not dropped
    }

    [Fact]
    public void Synthetic_SharedPrefixes_EveryPromptStartsWithOneOfThem()
    {
        var prompts = new PromptFactory(PromptFormat.TokenIds, 1.0, 32000);
        var requests = new SyntheticWorkload(prompts, 5, 20, 0, 10, 0, prefixLength: 32, numPrefixes: 3).Requests().Take(9).ToList();
        Assert.All(requests, r => Assert.Equal(52, r.TokenIds!.Length));
        Assert.Equal(requests[0].TokenIds![..32], requests[3].TokenIds![..32]);
        Assert.Equal(requests[1].TokenIds![..32], requests[7].TokenIds![..32]);
        Assert.NotEqual(requests[0].TokenIds![..32], requests[1].TokenIds![..32]);
        Assert.NotEqual(requests[0].TokenIds![32..], requests[3].TokenIds![32..]);
    }

    [Fact]
    public void Synthetic_TextPrompt_HasRoundedWordCount()
    {
        var prompts = new PromptFactory(PromptFormat.Text, 1.25, 32000);
        var request = new SyntheticWorkload(prompts, 5, 100, 0, 10, 0).Requests().First();
        Assert.Equal(80, request.Text!.Split(' ').Length);
        Assert.Equal(100, request.PromptTokens);
    }

    [Fact]
    public void Schedule_PoissonWithSeed_MeanInterArrivalIsOneOverRate()
    {
        var gaps = Gaps(rate: 20, burstiness: 1, seed: 7, count: 20000);
        Assert.InRange(gaps.Average(), 0.05 * 0.96, 0.05 * 1.04);
        // Exponential: the standard deviation equals the mean.
        Assert.InRange(Std(gaps) / gaps.Average(), 0.93, 1.07);
    }

    [Fact]
    public void Schedule_Burstiness_ChangesVarianceNotMean()
    {
        var bursty = Gaps(rate: 10, burstiness: 0.25, seed: 1, count: 20000);
        var regular = Gaps(rate: 10, burstiness: 4, seed: 1, count: 20000);
        Assert.InRange(bursty.Average(), 0.1 * 0.93, 0.1 * 1.07);
        Assert.InRange(regular.Average(), 0.1 * 0.96, 0.1 * 1.04);
        // Gamma with shape k: coefficient of variation 1/sqrt(k) (2 for k = 0.25, 0.5 for k = 4).
        Assert.InRange(Std(bursty) / bursty.Average(), 1.8, 2.2);
        Assert.InRange(Std(regular) / regular.Average(), 0.46, 0.54);
    }

    [Fact]
    public void Schedule_SameSeed_GivesTheSameArrivals()
    {
        Assert.Equal(Gaps(5, 1, 9, 100), Gaps(5, 1, 9, 100));
        Assert.NotEqual(Gaps(5, 1, 9, 100), Gaps(5, 1, 10, 100));
    }

    private static List<double> Gaps(double rate, double burstiness, int seed, int count)
    {
        var requests = Enumerable.Range(0, count + 1).Select(i => new BenchRequest(i, "x", null, 1, 1));
        var times = BenchRunner.Schedule(requests, new Random(seed), rate, burstiness).Select(r => r.ScheduledAt!.Value.TotalSeconds).ToList();
        Assert.Equal(0, times[0]);
        return [.. times.Zip(times.Skip(1), (a, b) => b - a)];
    }

    private static double Std(List<double> values)
    {
        var mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Count);
    }
}
