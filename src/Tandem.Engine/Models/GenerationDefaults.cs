namespace Tandem.Engine.Models;

/// <summary>Sampling defaults a model ships with (Hugging Face <c>generation_config.json</c>); null = not given.</summary>
public sealed record GenerationDefaults
{
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? RepetitionPenalty { get; init; }

    /// <summary>Extra end-of-sequence ids beyond the tokenizer's EOS.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public static GenerationDefaults None { get; } = new();
}
