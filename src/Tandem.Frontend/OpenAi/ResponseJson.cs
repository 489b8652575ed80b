using System.Text.Json;

namespace Tandem.Frontend.OpenAi;

/// <summary>One sampled token's log-probability as returned to clients.</summary>
internal readonly record struct TokenLogprob(string Token, float Logprob, byte[] Bytes);

/// <summary>Token counts of a finished (or streamed) request.</summary>
internal readonly record struct Usage(int PromptTokens, int CompletionTokens, int CachedTokens);

/// <summary>Writes the OpenAI response objects for completions and chat completions (whole answers and stream chunks).</summary>
internal sealed class ResponseJson(ApiEndpoint endpoint, string id, string model, long created)
{
    private bool IsChat => endpoint == ApiEndpoint.ChatCompletions;

    /// <summary>A whole (non-streaming) answer.</summary>
    public void WriteCompletion(Utf8JsonWriter w, string text, string finishReason, IReadOnlyList<TokenLogprob>? logprobs, Usage usage)
    {
        WriteHeader(w, IsChat ? "chat.completion" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (IsChat)
        {
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text);
        }
        WriteLogprobs(w, logprobs, 0);
        w.WriteString("finish_reason", finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    /// <summary>A stream chunk with text (and/or the finish reason); <paramref name="role"/> marks the chat's first chunk.</summary>
    public void WriteChunk(Utf8JsonWriter w, string text, string? finishReason, IReadOnlyList<TokenLogprob>? logprobs, int textOffset, bool role, bool usageNull)
    {
        WriteHeader(w, IsChat ? "chat.completion.chunk" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (IsChat)
        {
            w.WriteStartObject("delta");
            if (role)
            {
                w.WriteString("role", "assistant");
            }
            if (text.Length > 0 || role)
            {
                w.WriteString("content", text);
            }
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text);
        }
        WriteLogprobs(w, logprobs, textOffset);
        if (finishReason is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finishReason);
        }
        w.WriteEndObject();
        w.WriteEndArray();
        if (usageNull)
        {
            w.WriteNull("usage");
        }
        w.WriteEndObject();
    }

    /// <summary>The last chunk when the client asked for usage: no choices, only the counts.</summary>
    public void WriteUsageChunk(Utf8JsonWriter w, Usage usage)
    {
        WriteHeader(w, IsChat ? "chat.completion.chunk" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    private void WriteHeader(Utf8JsonWriter w, string obj)
    {
        w.WriteStartObject();
        w.WriteString("id", (IsChat ? "chatcmpl-" : "cmpl-") + id);
        w.WriteString("object", obj);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteString("system_fingerprint", "tandem");
    }

    private void WriteLogprobs(Utf8JsonWriter w, IReadOnlyList<TokenLogprob>? logprobs, int textOffset)
    {
        if (logprobs is null)
        {
            w.WriteNull("logprobs");
            return;
        }
        w.WriteStartObject("logprobs");
        if (IsChat)
        {
            w.WriteStartArray("content");
            foreach (var t in logprobs)
            {
                w.WriteStartObject();
                w.WriteString("token", t.Token);
                w.WriteNumber("logprob", t.Logprob);
                w.WriteStartArray("bytes");
                foreach (var b in t.Bytes)
                {
                    w.WriteNumberValue(b);
                }
                w.WriteEndArray();
                w.WriteStartArray("top_logprobs");
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        else
        {
            w.WriteStartArray("tokens");
            foreach (var t in logprobs)
            {
                w.WriteStringValue(t.Token);
            }
            w.WriteEndArray();
            w.WriteStartArray("token_logprobs");
            foreach (var t in logprobs)
            {
                w.WriteNumberValue(t.Logprob);
            }
            w.WriteEndArray();
            w.WriteNull("top_logprobs");
            w.WriteStartArray("text_offset");
            var offset = textOffset;
            foreach (var t in logprobs)
            {
                w.WriteNumberValue(offset);
                offset += t.Token.Length;
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    private static void WriteUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.PromptTokens + usage.CompletionTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", usage.CachedTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
