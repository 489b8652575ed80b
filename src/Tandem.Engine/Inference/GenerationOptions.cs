using Tandem.Abstractions;

namespace Tandem.Engine.Inference;

/// <summary>What to generate for one prompt.</summary>
public sealed record GenerationOptions
{
    public int MaxTokens { get; init; } = 256;
    public SamplingParams Sampling { get; init; } = SamplingParams.Greedy;

    /// <summary>Ids that end generation besides the tokenizer's stop tokens.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Keep going past EOS/stop tokens (benchmarks).</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Prompt tokens per forward step during prefill (bounds scratch memory).</summary>
    public int PrefillChunk { get; init; } = 512;
}

/// <summary>The outcome of <see cref="TextGenerator.Generate"/>, with timing.</summary>
public sealed record GenerationResult(
    IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> OutputTokens,
    string Text,
    FinishReason FinishReason,
    TimeSpan PrefillTime,
    TimeSpan DecodeTime)
{
    public double PrefillTokensPerSecond => PromptTokens.Count / Math.Max(PrefillTime.TotalSeconds, 1e-9);

    /// <summary>Decode throughput over the tokens after the first (the first comes from the prefill step).</summary>
    public double DecodeTokensPerSecond => Math.Max(OutputTokens.Count - 1, 0) / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}
