using System.CommandLine;
using System.Globalization;
using Tandem.Engine.Serving;

namespace Tandem.Cli.Commands;

/// <summary>The serving-engine flags shared by every command that hosts an engine (`--num-kv-blocks`, `--max-num-seqs`, ...).</summary>
internal sealed class ServingFlags
{
    private readonly Option<int> _blockSize = CliOptions.Create("--kv-block-size", "Tokens per KV cache block", 16);
    private readonly Option<int?> _numBlocks = CliOptions.Optional<int>("--num-kv-blocks", "KV cache size in blocks (default: --kv-cache-memory)");
    private readonly Option<string?> _memory = CliOptions.Create<string?>("--kv-cache-memory", "KV cache size as memory, e.g. 512MiB or 2GiB (default: enough for --max-num-seqs full contexts, at most 1GiB)", null);
    private readonly Option<int> _maxSeqs = CliOptions.Create("--max-num-seqs", "Sequences running at once", 64);
    private readonly Option<int> _maxBatched = CliOptions.Create("--max-num-batched-tokens", "Tokens per engine step (decodes plus prefill chunks)", 512);
    private readonly Option<int> _maxQueue = CliOptions.Create("--max-queue-length", "Requests waiting for admission before new ones are rejected", 1024);
    private readonly Option<bool> _noPrefixCache = CliOptions.Create("--no-prefix-caching", "Do not reuse KV blocks of earlier prompts", false);

    public IEnumerable<Option> Options => [_blockSize, _numBlocks, _memory, _maxSeqs, _maxBatched, _maxQueue, _noPrefixCache];

    public ServingOptions Read(ParseResult parse)
    {
        var options = new ServingOptions
        {
            BlockSize = parse.GetValue(_blockSize),
            NumKvBlocks = parse.GetValue(_numBlocks),
            KvCacheMemoryBytes = parse.GetValue(_memory) is { } memory ? ParseBytes(memory) : null,
            MaxNumSeqs = parse.GetValue(_maxSeqs),
            MaxNumBatchedTokens = parse.GetValue(_maxBatched),
            MaxQueueLength = parse.GetValue(_maxQueue),
            EnablePrefixCaching = !parse.GetValue(_noPrefixCache),
        };
        options.Validate();
        return options;
    }

    /// <summary>The flags given on the command line (or in the environment) applied over <paramref name="baseline"/>; defaults do not override it.</summary>
    public ServingOptions ReadOver(ParseResult parse, ServingOptions baseline)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(baseline);
        bool Given(Option o) => parse.GetResult(o) is { Implicit: false } || Environment.GetEnvironmentVariable(CliOptions.EnvironmentName(o.Name)) is { Length: > 0 };
        var options = baseline with
        {
            BlockSize = Given(_blockSize) ? parse.GetValue(_blockSize) : baseline.BlockSize,
            NumKvBlocks = Given(_numBlocks) ? parse.GetValue(_numBlocks) : baseline.NumKvBlocks,
            KvCacheMemoryBytes = Given(_memory) && parse.GetValue(_memory) is { } memory ? ParseBytes(memory) : baseline.KvCacheMemoryBytes,
            MaxNumSeqs = Given(_maxSeqs) ? parse.GetValue(_maxSeqs) : baseline.MaxNumSeqs,
            MaxNumBatchedTokens = Given(_maxBatched) ? parse.GetValue(_maxBatched) : baseline.MaxNumBatchedTokens,
            MaxQueueLength = Given(_maxQueue) ? parse.GetValue(_maxQueue) : baseline.MaxQueueLength,
            EnablePrefixCaching = !(Given(_noPrefixCache) && parse.GetValue(_noPrefixCache)) && baseline.EnablePrefixCaching,
        };
        options.Validate();
        return options;
    }

    /// <summary>Parses "2GiB", "512MiB", "1.5GB", "4096" (bytes); binary (KiB/MiB/GiB) and decimal (KB/MB/GB) units.</summary>
    public static long ParseBytes(string text)
    {
        var s = text.Trim();
        var split = 0;
        while (split < s.Length && (char.IsDigit(s[split]) || s[split] == '.'))
        {
            split++;
        }
        var unit = s[split..].Trim().ToUpperInvariant();
        double scale = unit switch
        {
            "" or "B" => 1,
            "K" or "KIB" => 1L << 10,
            "M" or "MIB" => 1L << 20,
            "G" or "GIB" => 1L << 30,
            "T" or "TIB" => 1L << 40,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            _ => throw new ArgumentException($"'{text}' is not a size: use a number with B, KiB, MiB, GiB (or KB, MB, GB), e.g. 2GiB"),
        };
        if (split == 0 || !double.TryParse(s[..split], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            throw new ArgumentException($"'{text}' is not a positive size, e.g. 2GiB");
        }
        return (long)Math.Min(value * scale, long.MaxValue);
    }
}
