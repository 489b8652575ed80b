using Tandem.ChatTemplates;
using Tandem.Engine.Tokenizers;

namespace Tandem.Frontend.Models;

/// <summary>
/// What the frontend needs to pre- and post-process requests for one model name: the tokenizer, the chat template,
/// the context length and the model's own stop tokens and sampling defaults. Workers do the compute.
/// </summary>
public sealed record ServedModel
{
    /// <summary>The name clients put in <c>model</c>.</summary>
    public required string Name { get; init; }

    public required Tokenizer Tokenizer { get; init; }

    public required int ContextLength { get; init; }

    /// <summary>The model's chat template, or <see cref="ChatTemplates.ChatTemplate.Default"/> (ChatML) when it has none.</summary>
    public ChatTemplate ChatTemplate { get; init; } = ChatTemplate.Default;

    /// <summary>End-of-sequence ids from the model's generation config (the tokenizer's own EOS always stops).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Sampling used when a request leaves a setting out (the model's generation_config).</summary>
    public float? DefaultTemperature { get; init; }
    public float? DefaultTopP { get; init; }
    public int? DefaultTopK { get; init; }
    public float? DefaultRepetitionPenalty { get; init; }

    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;
}
