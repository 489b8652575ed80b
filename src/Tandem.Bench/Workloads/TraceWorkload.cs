using System.Text.Json;

namespace Tandem.Bench.Workloads;

/// <summary>One record of a Mooncake-format trace.</summary>
internal sealed record TraceRecord(double TimestampMs, int InputLength, int OutputLength, long[] HashIds);

/// <summary>
/// Replays a Mooncake-format JSONL trace (<c>{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}</c>).
/// Each hash id stands for a block of <c>blockSize</c> tokens whose content depends only on the id and the seed, so
/// records sharing their first k hash ids get prompts equal for exactly k blocks. The last block is cut to the input
/// length; lengths beyond the listed blocks are filled with content unique to the record. Send times are the timestamps
/// divided by the speedup.
/// </summary>
internal sealed class TraceWorkload : IWorkload
{
    private readonly IReadOnlyList<TraceRecord> _records;
    private readonly PromptFactory _prompts;
    private readonly int _blockSize;
    private readonly double _speedup;
    private readonly int _seed;
    private readonly Dictionary<long, int[]> _blocks = [];

    public TraceWorkload(IReadOnlyList<TraceRecord> records, PromptFactory prompts, int blockSize, double speedup, int seed)
    {
        _records = records;
        _prompts = prompts;
        _blockSize = blockSize;
        _speedup = speedup;
        _seed = seed;
    }

    public bool HasSchedule => true;

    public int Count => _records.Count;

    public IEnumerable<BenchRequest> Requests()
    {
        var origin = _records.Count == 0 ? 0 : _records[0].TimestampMs;
        for (var index = 0; index < _records.Count; index++)
        {
            var record = _records[index];
            yield return Build(index, record) with { ScheduledAt = TimeSpan.FromMilliseconds(Math.Max(0, record.TimestampMs - origin) / _speedup) };
        }
    }

    /// <summary>The prompt units of one record: its hash blocks in order, the last one cut to the input length.</summary>
    public int[] Units(int index, TraceRecord record)
    {
        var total = _prompts.UnitsFor(record.InputLength);
        var blockUnits = _prompts.UnitsFor(_blockSize);
        var units = new int[total];
        var filled = 0;
        foreach (var hash in record.HashIds)
        {
            if (filled >= total)
            {
                break;
            }
            var block = Block(hash, blockUnits);
            var take = Math.Min(block.Length, total - filled);
            block.AsSpan(0, take).CopyTo(units.AsSpan(filled));
            filled += take;
        }
        if (filled < total)
        {
            _prompts.Fill(new Random(Seeds.Mix(_seed, Seeds.Tail, index)), units.AsSpan(filled));
        }
        return units;
    }

    private BenchRequest Build(int index, TraceRecord record) => _prompts.Create(index, Units(index, record), Math.Max(1, record.OutputLength));

    private int[] Block(long hash, int blockUnits)
    {
        if (!_blocks.TryGetValue(hash, out var block))
        {
            block = new int[blockUnits];
            _prompts.Fill(new Random(Seeds.Mix(_seed, hash)), block);
            _blocks[hash] = block;
        }
        return block;
    }

    /// <summary>Reads a JSONL trace; blank lines are skipped, a malformed line fails with its line number.</summary>
    public static List<TraceRecord> Load(string path)
    {
        var records = new List<TraceRecord>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            try
            {
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                var timestamp = root.TryGetProperty("timestamp", out var t) ? t.GetDouble() : 0;
                var input = root.GetProperty("input_length").GetInt32();
                var output = root.GetProperty("output_length").GetInt32();
                var hashes = root.TryGetProperty("hash_ids", out var h) ? [.. h.EnumerateArray().Select(e => e.GetInt64())] : Array.Empty<long>();
                records.Add(new TraceRecord(timestamp, Math.Max(1, input), output, hashes));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new ArgumentException($"{path}:{lineNumber}: not a Mooncake trace record ({e.Message})", e);
            }
        }
        return records;
    }
}
