namespace Tandem.Abstractions;

/// <summary>
/// One generated token of a request as the engine streams it. A value type, so a stream of them allocates
/// nothing per token. The last output of a request carries <see cref="Finish"/>.
/// </summary>
/// <param name="Index">Position among the generated tokens, from 0.</param>
/// <param name="TokenId">The token.</param>
/// <param name="Logprob">Its log-probability when the request asked for logprobs; otherwise NaN.</param>
/// <param name="Finish">Set on the request's last token.</param>
/// <param name="CachedPromptTokens">Prompt tokens served from the prefix cache (or imported) instead of computed.</param>
/// <param name="Elapsed">Time from submission until this token was sampled.</param>
public readonly record struct TokenOutput(
    int Index,
    int TokenId,
    float Logprob,
    FinishReason? Finish,
    int CachedPromptTokens,
    TimeSpan Elapsed)
{
    public bool IsFinal => Finish is not null;
}
