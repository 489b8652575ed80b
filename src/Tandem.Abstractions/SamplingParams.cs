namespace Tandem.Abstractions;

/// <summary>
/// Per-request sampling settings (OpenAI / Hugging Face semantics). Defaults leave the distribution unchanged:
/// temperature 1, top_k 0 (off), top_p 1, min_p 0, no penalties, random seed.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>0 = greedy (argmax); otherwise logits are divided by it.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep the k most likely tokens; 0 = off.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus: keep the smallest most-likely prefix whose probability mass reaches top_p; 1 = off.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Keep tokens with p ≥ min_p × p_max; 0 = off.</summary>
    public float MinP { get; init; }

    /// <summary>OpenAI presence penalty, subtracted once from every token already in the output.</summary>
    public float PresencePenalty { get; init; }

    /// <summary>OpenAI frequency penalty, subtracted per occurrence in the output.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>Hugging Face repetition penalty over prompt + output tokens: positive logits divided, negative multiplied; 1 = off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Seed of the sampler's generator; null = random.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Temperature 0: always the most likely token.</summary>
    public static SamplingParams Greedy { get; } = new() { Temperature = 0f };

    public bool IsGreedy => Temperature == 0f;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first out-of-range setting.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0f) || float.IsInfinity(Temperature))
        {
            throw new ArgumentException($"temperature must be a finite number ≥ 0, got {Temperature}", nameof(Temperature));
        }
        if (TopK < 0)
        {
            throw new ArgumentException($"top_k must be ≥ 0 (0 disables it), got {TopK}", nameof(TopK));
        }
        if (!(TopP > 0f && TopP <= 1f))
        {
            throw new ArgumentException($"top_p must be in (0, 1], got {TopP}", nameof(TopP));
        }
        if (!(MinP >= 0f && MinP <= 1f))
        {
            throw new ArgumentException($"min_p must be in [0, 1], got {MinP}", nameof(MinP));
        }
        if (!(RepetitionPenalty > 0f) || float.IsInfinity(RepetitionPenalty))
        {
            throw new ArgumentException($"repetition_penalty must be a finite number > 0, got {RepetitionPenalty}", nameof(RepetitionPenalty));
        }
        if (!(PresencePenalty >= -2f && PresencePenalty <= 2f))
        {
            throw new ArgumentException($"presence_penalty must be in [-2, 2], got {PresencePenalty}", nameof(PresencePenalty));
        }
        if (!(FrequencyPenalty >= -2f && FrequencyPenalty <= 2f))
        {
            throw new ArgumentException($"frequency_penalty must be in [-2, 2], got {FrequencyPenalty}", nameof(FrequencyPenalty));
        }
    }
}
