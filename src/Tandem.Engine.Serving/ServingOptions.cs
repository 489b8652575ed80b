namespace Tandem.Engine.Serving;

/// <summary>Limits and sizes of a <see cref="ServingEngine"/> (the `--num-kv-blocks`, `--max-num-seqs`, ... flags).</summary>
public sealed record ServingOptions
{
    /// <summary>Tokens per KV block.</summary>
    public int BlockSize { get; init; } = 16;

    /// <summary>Size of the KV pool in blocks; wins over <see cref="KvCacheMemoryBytes"/>.</summary>
    public int? NumKvBlocks { get; init; }

    /// <summary>Size of the KV pool as a memory budget; default when neither is set: enough for MaxNumSeqs full contexts, at most 1 GiB.</summary>
    public long? KvCacheMemoryBytes { get; init; }

    /// <summary>Sequences running at once (more wait in the queue).</summary>
    public int MaxNumSeqs { get; init; } = 64;

    /// <summary>Tokens one step runs through the model at most (decodes count 1, prefill chunks their length).</summary>
    public int MaxNumBatchedTokens { get; init; } = 512;

    /// <summary>Requests waiting for admission at most; beyond it submissions are rejected (<see cref="Abstractions.EngineOverloadedException"/>).</summary>
    public int MaxQueueLength { get; init; } = 1024;

    /// <summary>Fraction of blocks kept free when admitting new sequences, so running ones can grow without immediate preemption.</summary>
    public double Watermark { get; init; } = 0.01;

    public bool EnablePrefixCaching { get; init; } = true;

    /// <summary>KV events kept for a slow or absent reader before the oldest are dropped.</summary>
    public int KvEventCapacity { get; init; } = 65536;

    /// <summary>
    /// When set, the KV pool is a file in this shared-memory directory (e.g. /dev/shm) so that KV transports of workers on
    /// the same host copy blocks straight into or out of it; private memory when null or when the file cannot be made.
    /// </summary>
    public string? KvSharedMemoryDirectory { get; init; }

    /// <summary>How long KV blocks retained after a prefill stay pinned when no one releases them.</summary>
    public TimeSpan RetainedKvTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        Check(BlockSize is >= 1 and <= 4096, $"block size must be in [1, 4096], got {BlockSize}");
        Check(NumKvBlocks is null or >= 1, $"the number of KV blocks must be ≥ 1, got {NumKvBlocks}");
        Check(KvCacheMemoryBytes is null or > 0, $"the KV cache memory must be > 0 bytes, got {KvCacheMemoryBytes}");
        Check(MaxNumSeqs >= 1, $"max sequences must be ≥ 1, got {MaxNumSeqs}");
        Check(MaxNumBatchedTokens >= 1, $"max batched tokens must be ≥ 1, got {MaxNumBatchedTokens}");
        Check(MaxQueueLength >= 0, $"max queue length must be ≥ 0, got {MaxQueueLength}");
        Check(Watermark is >= 0 and < 1, $"watermark must be in [0, 1), got {Watermark}");
        Check(KvEventCapacity >= 1, $"KV event capacity must be ≥ 1, got {KvEventCapacity}");
        Check(RetainedKvTimeout > TimeSpan.Zero, $"retained KV timeout must be positive, got {RetainedKvTimeout}");
    }

    /// <summary>The pool size in blocks for a model whose blocks take <paramref name="bytesPerBlock"/> and whose context is <paramref name="contextLength"/>.</summary>
    public int ResolveBlockCount(long bytesPerBlock, int contextLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytesPerBlock, 1);
        if (NumKvBlocks is { } n)
        {
            return n;
        }
        if (KvCacheMemoryBytes is { } bytes)
        {
            var blocks = bytes / bytesPerBlock;
            if (blocks < 1)
            {
                throw new ArgumentException($"a KV cache budget of {bytes} bytes holds no block (one block takes {bytesPerBlock} bytes)");
            }
            return (int)Math.Min(blocks, int.MaxValue);
        }
        var perSequence = (contextLength + BlockSize - 1) / BlockSize;
        var wanted = (long)perSequence * MaxNumSeqs;
        var budget = Math.Max(1, (1L << 30) / bytesPerBlock);
        return (int)Math.Max(Math.Min(wanted, budget), perSequence);
    }

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new ArgumentException(message);
        }
    }
}
