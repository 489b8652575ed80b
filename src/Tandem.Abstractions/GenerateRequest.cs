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
}
