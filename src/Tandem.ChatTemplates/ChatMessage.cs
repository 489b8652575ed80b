namespace Tandem.ChatTemplates;

/// <summary>One message of a chat conversation as a template sees it (<c>message.role</c>, <c>message.content</c>, ...).</summary>
/// <remarks>
/// Optional members are exposed to the template only when set, so template checks such as
/// <c>'tool_calls' in message</c> or <c>message.tool_calls is defined</c> behave as with Hugging Face.
/// </remarks>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>Tool calls made by an assistant message; exposed as <c>tool_calls</c>.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>Optional participant or tool name; exposed as <c>name</c>.</summary>
    public string? Name { get; init; }

    /// <summary>The call a tool message answers; exposed as <c>tool_call_id</c>.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>Reasoning text of an assistant message; exposed as <c>reasoning_content</c> (Qwen3, DeepSeek-R1 templates).</summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>
/// One tool call. Exposed to templates in the OpenAI shape
/// <c>{"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}</c>, where <c>arguments</c>
/// is the parsed JSON object when <see cref="ArgumentsJson"/> holds one (templates apply <c>tojson</c> to it)
/// and the raw string otherwise.
/// </summary>
public sealed record ChatToolCall(string Id, string Name, string ArgumentsJson);
