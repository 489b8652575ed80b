namespace Tandem.Engine.Inference;

/// <summary>
/// Part of one forward step: <see cref="Tokens"/> are appended to <see cref="Sequence"/> at positions
/// Sequence.Length, Sequence.Length + 1, ... A prefill chunk carries many tokens, a decode step one.
/// A value type so that a serving loop can build a step's chunk list without allocating.
/// </summary>
/// <param name="Sequence">The sequence whose cache receives the tokens' keys and values (room reserved by the caller).</param>
/// <param name="Tokens">Token ids to run.</param>
/// <param name="WantLogits">Whether the caller needs next-token logits after the last token of this chunk.</param>
public readonly record struct ForwardChunk(KvSequence Sequence, ReadOnlyMemory<int> Tokens, bool WantLogits = true);
