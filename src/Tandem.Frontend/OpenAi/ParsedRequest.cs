using System.Text.Json;

namespace Tandem.Frontend.OpenAi;

/// <summary>Which OpenAI endpoint a request came through.</summary>
internal enum ApiEndpoint
{
    Completions,
    ChatCompletions,
}

/// <summary>One chat message with its content flattened to text.</summary>
internal sealed record ParsedMessage(string Role, string? Content)
{
    public string? Name { get; init; }
    public string? ToolCallId { get; init; }

    /// <summary>Assistant tool calls as (id, name, arguments JSON).</summary>
    public IReadOnlyList<(string Id, string Name, string Arguments)> ToolCalls { get; init; } = [];
}

/// <summary>An OpenAI request after field validation, before tokenization.</summary>
internal sealed record ParsedRequest
{
    public required ApiEndpoint Endpoint { get; init; }
    public required string Model { get; init; }

    /// <summary>Completions: the prompt text, or null when given as token ids.</summary>
    public string? PromptText { get; init; }

    /// <summary>Completions: the prompt as token ids (vocabulary checked later, when the model is known).</summary>
    public JsonElement? PromptTokenArray { get; init; }

    /// <summary>Chat: the conversation.</summary>
    public IReadOnlyList<ParsedMessage> Messages { get; init; } = [];

    public bool AddGenerationPrompt { get; init; } = true;

    /// <summary>Chat: extra variables for the chat template (<c>chat_template_kwargs</c>, <c>tools</c>).</summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables { get; init; } = new Dictionary<string, object?>();

    public int? MaxTokens { get; init; }
    public int MinTokens { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float MinP { get; init; }
    public float PresencePenalty { get; init; }
    public float FrequencyPenalty { get; init; }
    public float? RepetitionPenalty { get; init; }
    public ulong? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
    public bool IgnoreEos { get; init; }
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }

    /// <summary>Return the sampled tokens' log-probabilities.</summary>
    public bool Logprobs { get; init; }

    public bool Echo { get; init; }
    public string? User { get; init; }

    /// <summary>Isolates the request's prefix-cache entries (vLLM's <c>cache_salt</c>).</summary>
    public string? CacheSalt { get; init; }

    /// <summary>TensorRT-LLM's context/generation handoff (<c>disaggregated_params</c>); null for ordinary requests.</summary>
    public DisaggregatedParams? Disaggregated { get; init; }
}
