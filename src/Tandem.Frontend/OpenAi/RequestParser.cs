using System.Text.Json;

namespace Tandem.Frontend.OpenAi;

/// <summary>
/// Validates OpenAI request bodies field by field (blueprint §4), so that every mistake gets a 400 that names the field.
/// Unknown fields are ignored, as vLLM does, so clients written for other servers keep working.
/// </summary>
internal static class RequestParser
{
    private const int MaxStopStrings = 16;
    private const int MaxStopLength = 1024;

    public static ParsedRequest Parse(JsonElement body, ApiEndpoint endpoint)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw OpenAiException.BadRequest("the request body must be a JSON object");
        }
        var f = new JsonFields(body);
        var model = f.String("model");
        if (string.IsNullOrEmpty(model))
        {
            throw OpenAiException.BadRequest("'model' is required", "model");
        }
        if (f.Integer("n", 1, 128) is > 1)
        {
            throw OpenAiException.BadRequest("only n = 1 is supported", "n");
        }
        if (f.Integer("best_of", 1, 128) is > 1)
        {
            throw OpenAiException.BadRequest("only best_of = 1 is supported", "best_of");
        }
        if (f.Get("logit_bias") is { ValueKind: JsonValueKind.Object } bias && bias.EnumerateObject().Any())
        {
            throw OpenAiException.BadRequest("logit_bias is not supported", "logit_bias");
        }
        if (f.Get("response_format") is { } format && new JsonFields(format).String("type") is { } type && type != "text")
        {
            throw OpenAiException.BadRequest($"response_format type '{type}' is not supported (only 'text')", "response_format");
        }
        var maxTokens = f.Integer("max_completion_tokens", 1, int.MaxValue) ?? f.Integer("max_tokens", 1, int.MaxValue);
        var minTokens = (int)(f.Integer("min_tokens", 0, int.MaxValue) ?? 0);
        if (maxTokens is { } max && minTokens > max)
        {
            throw OpenAiException.BadRequest($"'min_tokens' ({minTokens}) must not exceed 'max_tokens' ({max})", "min_tokens");
        }
        var stop = f.Strings("stop", MaxStopStrings);
        foreach (var s in stop)
        {
            if (s.Length == 0 || s.Length > MaxStopLength)
            {
                throw OpenAiException.BadRequest($"each stop string must have 1..{MaxStopLength} characters", "stop");
            }
        }
        var stream = f.Bool("stream") ?? false;
        var includeUsage = false;
        if (f.Get("stream_options") is { } so)
        {
            if (so.ValueKind != JsonValueKind.Object)
            {
                throw JsonFields.TypeError("stream_options", "an object", so);
            }
            if (!stream)
            {
                throw OpenAiException.BadRequest("'stream_options' is only allowed when 'stream' is true", "stream_options");
            }
            includeUsage = new JsonFields(so).Bool("include_usage") ?? false;
        }

        var request = new ParsedRequest
        {
            Endpoint = endpoint,
            Model = model,
            MaxTokens = (int?)maxTokens,
            MinTokens = minTokens,
            Temperature = (float?)f.Number("temperature", 0, 2),
            TopP = f.Number("top_p", 0, 1) is { } topP
                ? topP > 0 ? (float)topP : throw OpenAiException.BadRequest("'top_p' must be in (0, 1], got 0", "top_p")
                : null,
            TopK = f.Integer("top_k", -1, int.MaxValue) is { } k ? (int)Math.Max(k, 0) : null, // vLLM: -1 = off
            MinP = (float)(f.Number("min_p", 0, 1) ?? 0),
            PresencePenalty = (float)(f.Number("presence_penalty", -2, 2) ?? 0),
            FrequencyPenalty = (float)(f.Number("frequency_penalty", -2, 2) ?? 0),
            RepetitionPenalty = f.Number("repetition_penalty", double.Epsilon, 100) is { } rp ? (float)rp : null,
            Seed = f.Integer("seed", long.MinValue, long.MaxValue) is { } seed ? unchecked((ulong)seed) : null,
            Stop = stop,
            StopTokenIds = f.Ints("stop_token_ids", int.MaxValue),
            IgnoreEos = f.Bool("ignore_eos") ?? false,
            Stream = stream,
            IncludeUsage = includeUsage,
            User = f.String("user"),
            CacheSalt = f.String("cache_salt"),
            Disaggregated = DisaggregatedParams.Read(f),
        };
        return endpoint == ApiEndpoint.Completions ? Completions(f, request) : Chat(f, request);
    }

    private static ParsedRequest Completions(JsonFields f, ParsedRequest request)
    {
        if (f.Get("prompt") is not { } prompt)
        {
            throw OpenAiException.BadRequest("'prompt' is required", "prompt");
        }
        if (f.Has("suffix"))
        {
            throw OpenAiException.BadRequest("'suffix' is not supported", "suffix");
        }
        var logprobs = f.Integer("logprobs", 0, 20);
        if (logprobs > 0)
        {
            throw OpenAiException.BadRequest("only logprobs = 0 is supported (the sampled token's log-probability, no alternatives)", "logprobs");
        }
        request = request with { Logprobs = logprobs is not null, Echo = f.Bool("echo") ?? false };
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                return request with { PromptText = prompt.GetString() };
            case JsonValueKind.Array:
                if (prompt.GetArrayLength() == 0)
                {
                    throw OpenAiException.BadRequest("'prompt' must not be empty", "prompt");
                }
                var first = prompt[0];
                if (first.ValueKind == JsonValueKind.Number)
                {
                    JsonFields.ReadTokenIds(prompt, "prompt", int.MaxValue); // types now; the vocabulary once the model is known
                    return request with { PromptTokenArray = prompt.Clone() };
                }
                // A batch of prompts (["a", "b"] or [[1,2],[3]]) would need n responses in one; a single one is accepted.
                if (prompt.GetArrayLength() == 1 && first.ValueKind == JsonValueKind.String)
                {
                    return request with { PromptText = first.GetString() };
                }
                if (prompt.GetArrayLength() == 1 && first.ValueKind == JsonValueKind.Array && first.GetArrayLength() > 0)
                {
                    JsonFields.ReadTokenIds(first, "prompt", int.MaxValue);
                    return request with { PromptTokenArray = first.Clone() };
                }
                throw OpenAiException.BadRequest("'prompt' must be a string, an array of token ids, or a one-element array of either; batches of prompts are not supported", "prompt");
            default:
                throw JsonFields.TypeError("prompt", "a string or an array of token ids", prompt);
        }
    }

    private static ParsedRequest Chat(JsonFields f, ParsedRequest request)
    {
        if (f.Get("messages") is not { } messages)
        {
            throw OpenAiException.BadRequest("'messages' is required", "messages");
        }
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw JsonFields.TypeError("messages", "an array of message objects", messages);
        }
        if (messages.GetArrayLength() == 0)
        {
            throw OpenAiException.BadRequest("'messages' must contain at least one message", "messages");
        }
        var list = new List<ParsedMessage>();
        var i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            list.Add(Message(m, $"messages[{i++}]"));
        }
        var topLogprobs = f.Integer("top_logprobs", 0, 20);
        if (topLogprobs > 0)
        {
            throw OpenAiException.BadRequest("only top_logprobs = 0 is supported (the sampled token's log-probability, no alternatives)", "top_logprobs");
        }
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (f.Get("chat_template_kwargs") is { } kwargs)
        {
            if (kwargs.ValueKind != JsonValueKind.Object)
            {
                throw JsonFields.TypeError("chat_template_kwargs", "an object", kwargs);
            }
            foreach (var p in kwargs.EnumerateObject())
            {
                variables[p.Name] = JsonValues.ToPlain(p.Value);
            }
        }
        if (f.Get("tools") is { } tools)
        {
            if (tools.ValueKind != JsonValueKind.Array)
            {
                throw JsonFields.TypeError("tools", "an array", tools);
            }
            variables["tools"] = JsonValues.ToPlain(tools);
        }
        var continueFinal = f.Bool("continue_final_message") ?? false;
        var addGeneration = f.Bool("add_generation_prompt") ?? !continueFinal;
        return request with
        {
            Messages = list,
            Logprobs = f.Bool("logprobs") ?? false,
            AddGenerationPrompt = addGeneration,
            TemplateVariables = variables,
        };
    }

    private static ParsedMessage Message(JsonElement m, string where)
    {
        if (m.ValueKind != JsonValueKind.Object)
        {
            throw JsonFields.TypeError(where, "a message object", m);
        }
        var f = new JsonFields(m);
        var role = f.String("role");
        if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
        {
            throw OpenAiException.BadRequest($"{where}.role must be one of system, developer, user, assistant, tool; got {(role is null ? "nothing" : $"'{role}'")}", "messages");
        }
        string? content = null;
        if (f.Get("content") is { } c)
        {
            content = c.ValueKind switch
            {
                JsonValueKind.String => c.GetString(),
                JsonValueKind.Array => JoinTextParts(c, where),
                _ => throw JsonFields.TypeError($"{where}.content", "a string or an array of content parts", c),
            };
        }
        var calls = new List<(string, string, string)>();
        if (f.Get("tool_calls") is { ValueKind: JsonValueKind.Array } toolCalls)
        {
            foreach (var call in toolCalls.EnumerateArray())
            {
                var cf = new JsonFields(call);
                var fn = cf.Get("function") is { ValueKind: JsonValueKind.Object } fnEl ? new JsonFields(fnEl) : throw OpenAiException.BadRequest($"{where}.tool_calls entries need a 'function' object", "messages");
                calls.Add((cf.String("id") ?? "", fn.String("name") ?? "", fn.String("arguments") ?? "{}"));
            }
        }
        if (content is null && calls.Count == 0 && role != "assistant")
        {
            throw OpenAiException.BadRequest($"{where}.content is required for role '{role}'", "messages");
        }
        return new ParsedMessage(role == "developer" ? "system" : role, content)
        {
            Name = f.String("name"),
            ToolCallId = f.String("tool_call_id"),
            ToolCalls = calls,
        };
    }

    private static string JoinTextParts(JsonElement parts, string where)
    {
        var text = new System.Text.StringBuilder();
        foreach (var part in parts.EnumerateArray())
        {
            var pf = new JsonFields(part.ValueKind == JsonValueKind.Object ? part : throw JsonFields.TypeError($"{where}.content[]", "a content part object", part));
            var type = pf.String("type");
            if (type != "text")
            {
                throw OpenAiException.BadRequest($"{where}.content part type '{type}' is not supported (text only)", "messages");
            }
            text.Append(pf.String("text") ?? throw OpenAiException.BadRequest($"{where}.content text part needs 'text'", "messages"));
        }
        return text.ToString();
    }
}

/// <summary>Converts JSON to plain values (string, bool, long, double, lists, dictionaries) for chat templates.</summary>
internal static class JsonValues
{
    public static object? ToPlain(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => v.TryGetInt64(out var n) ? n : v.GetDouble(),
        JsonValueKind.Array => v.EnumerateArray().Select(ToPlain).ToList(),
        JsonValueKind.Object => v.EnumerateObject().ToDictionary(p => p.Name, p => ToPlain(p.Value), StringComparer.Ordinal),
        _ => null,
    };
}
