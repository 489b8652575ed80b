using System.Text.Json;
using Tandem.ChatTemplates.Jinja;

namespace Tandem.ChatTemplates;

/// <summary>
/// A model's chat template (Hugging Face <c>chat_template</c>, GGUF <c>tokenizer.chat_template</c>): a Jinja template
/// that turns <c>messages</c> into the prompt string. Parsed once, rendered per request; rendering is thread-safe.
/// Rendering matches Hugging Face's environment: <c>trim_blocks</c> and <c>lstrip_blocks</c> on, the globals
/// <c>raise_exception</c> and <c>strftime_now</c>, and a <c>tojson</c> that does not escape HTML or non-ASCII.
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>
    /// ChatML, for models that ship no template: <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message, then
    /// <c>&lt;|im_start|&gt;assistant\n</c>. It is the format most open chat models are tuned on and the one
    /// Hugging Face used as its default.
    /// </summary>
    public const string DefaultSource =
        "{%- for message in messages %}"
        + "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>' + '\\n' }}"
        + "{%- endfor %}"
        + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    private static readonly Lazy<ChatTemplate> LazyDefault = new(() => Parse(DefaultSource));

    private readonly SourceText _source;
    private readonly IReadOnlyList<Node> _body;

    private ChatTemplate(SourceText source, IReadOnlyList<Node> body)
    {
        _source = source;
        _body = body;
    }

    /// <summary>The ChatML template of <see cref="DefaultSource"/>.</summary>
    public static ChatTemplate Default => LazyDefault.Value;

    public string Source => _source.Text;

    /// <summary>Parses a template. Throws <see cref="ChatTemplateException"/> with the line and column of a syntax error.</summary>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var text = new SourceText(source);
        return new ChatTemplate(text, Parser.Parse(text));
    }

    /// <summary>
    /// Renders the prompt. Variables: <c>messages</c>, <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c>,
    /// <c>tools</c> and <c>documents</c> (none unless given), then <see cref="ChatTemplateContext.Extra"/>.
    /// Throws <see cref="ChatTemplateException"/> when the template raises or fails.
    /// </summary>
    public string Render(IReadOnlyList<ChatMessage> messages, ChatTemplateContext context)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(context);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => (object?)ToValue(m)).ToList(),
            ["add_generation_prompt"] = context.AddGenerationPrompt,
            ["bos_token"] = context.BosToken,
            ["eos_token"] = context.EosToken,
            ["tools"] = null,
            ["documents"] = null,
        };
        if (context.Extra is not null)
        {
            foreach (var (name, value) in context.Extra)
            {
                variables[name] = Json.FromClr(value);
            }
        }

        try
        {
            return Interpreter.Render(_body, variables, context.TimeProvider ?? TimeProvider.System);
        }
        catch (TemplateRuntimeException e)
        {
            var (line, column) = e.Position >= 0 ? _source.Locate(e.Position) : (0, 0);
            var message = e.RaisedByTemplate || e.Position < 0 ? e.Message : $"{e.Message} (line {line}, column {column})";
            throw new ChatTemplateException(message, line, column, e.RaisedByTemplate);
        }
        catch (Exception e) when (e is OverflowException or InvalidCastException or ArgumentException or FormatException or InvalidOperationException)
        {
            throw new ChatTemplateException($"Template error: {e.Message}", e);
        }
    }

    private static Dictionary<string, object?> ToValue(ChatMessage message)
    {
        var value = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["role"] = message.Role,
            ["content"] = message.Content,
        };
        if (message.ToolCalls is not null)
        {
            value["tool_calls"] = message.ToolCalls.Select(call => (object?)new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["id"] = call.Id,
                ["type"] = "function",
                ["function"] = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["name"] = call.Name,
                    ["arguments"] = ParseArguments(call.ArgumentsJson),
                },
            }).ToList();
        }
        if (message.Name is not null)
        {
            value["name"] = message.Name;
        }
        if (message.ToolCallId is not null)
        {
            value["tool_call_id"] = message.ToolCallId;
        }
        if (message.ReasoningContent is not null)
        {
            value["reasoning_content"] = message.ReasoningContent;
        }
        return value;
    }

    private static object? ParseArguments(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = Limits.MaxDataDepth });
            return document.RootElement.ValueKind == JsonValueKind.Object ? Json.FromJsonElement(document.RootElement) : json;
        }
        catch (JsonException)
        {
            return json;
        }
    }
}
