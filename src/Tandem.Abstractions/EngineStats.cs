namespace Tandem.Abstractions;

/// <summary>A snapshot of an engine's load, for metrics, routing and tests.</summary>
public sealed record EngineStats
{
    /// <summary>Sequences holding KV blocks and taking part in steps.</summary>
    public int Running { get; init; }

    /// <summary>Admitted requests waiting for a slot or for KV blocks (preempted ones included).</summary>
    public int Waiting { get; init; }

    public int KvBlocksTotal { get; init; }

    /// <summary>Blocks referenced by a sequence or a KV lease (not reusable now).</summary>
    public int KvBlocksUsed { get; init; }

    /// <summary>Blocks holding a cached prefix that no one references (reusable; evicted in LRU order).</summary>
    public int KvBlocksCached { get; init; }

    public double KvUsage => KvBlocksTotal == 0 ? 0 : (double)KvBlocksUsed / KvBlocksTotal;

    /// <summary>Prompt tokens served from the prefix cache ÷ prompt tokens looked up, since start.</summary>
    public double PrefixHitRate => PrefixQueriedTokens == 0 ? 0 : (double)PrefixHitTokens / PrefixQueriedTokens;

    public long PrefixQueriedTokens { get; init; }
    public long PrefixHitTokens { get; init; }

    /// <summary>Sequences pushed back to the queue because KV blocks ran out (recomputed later).</summary>
    public long Preemptions { get; init; }

    public long RequestsFinished { get; init; }
    public long RequestsCancelled { get; init; }
    public long RequestsRejected { get; init; }
    public long Steps { get; init; }

    /// <summary>Prompt tokens run through the model (excludes cache hits; includes recompute after preemption).</summary>
    public long PromptTokensComputed { get; init; }

    public long TokensGenerated { get; init; }

    /// <summary>Decode worker: prompts prefilled by a prefill worker (KV pushed or pulled in).</summary>
    public long RemotePrefills { get; init; }

    /// <summary>Decode worker: prompts prefilled here (short, cached, or fallback).</summary>
    public long LocalPrefills { get; init; }

    /// <summary>Decode worker: remote prefills that failed or were skipped for lack of capacity and ran locally, by reason.</summary>
    public IReadOnlyDictionary<string, long> PrefillFallbacks { get; init; } = new Dictionary<string, long>();

    /// <summary>Prefill worker: remote prefills refused because they could not finish before the decode worker's deadline.</summary>
    public long RemotePrefillsRefused { get; init; }

    /// <summary>Prefill worker: prompt tokens of the prefills it accepted and has not finished.</summary>
    public long PrefillBacklogTokens { get; init; }
}
