namespace Tandem.Abstractions;

/// <summary>
/// One sequence to generate, as an engine receives it: already tokenized, with sampling settings and limits.
/// Text-level concerns (chat templates, stop strings, detokenization) belong to the frontend.
/// </summary>
public sealed record GenerateRequest
{
    /// <summary>Identifies the request in logs and stats; unique among the requests an engine holds.</summary>
    public required string RequestId { get; init; }

    public required IReadOnlyList<int> PromptTokens { get; init; }

    /// <summary>Tokens to generate at most (the context length may end generation earlier).</summary>
    public int MaxTokens { get; init; } = 256;

    /// <summary>Stop tokens are ignored until this many tokens were generated.</summary>
    public int MinTokens { get; init; }

    public SamplingParams Sampling { get; init; } = SamplingParams.Greedy;

    /// <summary>Ids that end generation besides the model's own stop tokens.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Keep going past the model's EOS/stop tokens (benchmarks); <see cref="StopTokenIds"/> still stop.</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Return each token's log-probability.</summary>
    public bool Logprobs { get; init; }

    /// <summary>Isolates this request's prefix-cache entries (e.g. per tenant or adapter); folded into the block-hash seed.</summary>
    public string? CacheSalt { get; init; }

    /// <summary>
    /// Prefill-first disaggregation: the prompt's KV was computed by a prefill worker and waits there under a lease;
    /// the decode worker pulls it and continues from the first token instead of prefilling. Engines ignore it.
    /// </summary>
    public RemoteKv? RemoteKv { get; init; }
}

/// <summary>Where a prompt's KV waits after a context-only prefill, and the first token sampled from it.</summary>
/// <param name="Address">The prefill worker's KV transfer address (e.g. <c>tcp://host:port</c>).</param>
/// <param name="Handle">The lease holding the blocks on that worker.</param>
/// <param name="Blocks">Blocks in the lease.</param>
/// <param name="FirstToken">The token the prefill sampled.</param>
/// <param name="FirstLogprob">Its log-probability (NaN when not asked for).</param>
/// <param name="InstanceId">The prefill worker, to release the lease through the request plane.</param>
public sealed record RemoteKv(string Address, long Handle, int Blocks, int FirstToken, float FirstLogprob, string InstanceId);
