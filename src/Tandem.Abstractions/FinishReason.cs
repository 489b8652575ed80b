namespace Tandem.Abstractions;

/// <summary>Why a sequence stopped producing tokens.</summary>
public enum FinishReason
{
    /// <summary>A stop token was produced (or a stop string matched, decided by the frontend).</summary>
    Stop,

    /// <summary>The requested number of tokens or the model's context length was reached.</summary>
    Length,
}
