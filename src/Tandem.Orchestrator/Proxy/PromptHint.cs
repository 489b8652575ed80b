using System.Text;
using System.Text.Json.Nodes;
using Tandem.Orchestrator.Backends;

namespace Tandem.Orchestrator.Proxy;

/// <summary>
/// What routing and conditional disaggregation know about a prompt without a model: its length in tokens (exact for
/// token ids, counted by the configured tokenizer or estimated at four bytes a token for text) and chained hashes of
/// its leading blocks (32 tokens or 128 characters each).
/// </summary>
internal static class PromptHint
{
    private const int TokensPerBlock = 32;
    private const int CharsPerBlock = 128;
    private const int MaxBlocks = 256;

    public static RouteHint For(JsonObject body, bool chat, Func<string, int>? countTokens)
    {
        if (!chat && body["prompt"] is JsonArray array && array.Count > 0 && array[0] is JsonValue)
        {
            var ids = new List<long>(array.Count);
            foreach (var item in array)
            {
                if (item is JsonValue v && v.TryGetValue<long>(out var id))
                {
                    ids.Add(id);
                }
            }
            return new RouteHint(ids.Count, TokenHashes(ids));
        }
        var text = chat ? ChatText(body) : PromptText(body);
        var tokens = countTokens is not null ? countTokens(text) : (Encoding.UTF8.GetByteCount(text) + 3) / 4;
        return new RouteHint(tokens, TextHashes(text));
    }

    private static string PromptText(JsonObject body) => body["prompt"] switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray { Count: 1 } a when a[0] is JsonValue v && v.TryGetValue<string>(out var s) => s,
        _ => "",
    };

    private static string ChatText(JsonObject body)
    {
        if (body["messages"] is not JsonArray messages)
        {
            return "";
        }
        var sb = new StringBuilder();
        foreach (var m in messages)
        {
            if (m is not JsonObject message)
            {
                continue;
            }
            sb.Append((message["role"] as JsonValue)?.ToString()).Append('\n');
            switch (message["content"])
            {
                case JsonValue v when v.TryGetValue<string>(out var s):
                    sb.Append(s);
                    break;
                case JsonArray parts:
                    foreach (var p in parts)
                    {
                        if (p?["text"] is JsonValue t && t.TryGetValue<string>(out var s))
                        {
                            sb.Append(s);
                        }
                    }
                    break;
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static ulong[] TokenHashes(List<long> ids)
    {
        var blocks = Math.Min(ids.Count / TokensPerBlock, MaxBlocks);
        var result = new ulong[blocks];
        var h = 14695981039346656037UL;
        for (var b = 0; b < blocks; b++)
        {
            for (var i = b * TokensPerBlock; i < (b + 1) * TokensPerBlock; i++)
            {
                h = Mix(h, (ulong)ids[i]);
            }
            result[b] = h;
        }
        return result;
    }

    private static ulong[] TextHashes(string text)
    {
        var blocks = Math.Min(text.Length / CharsPerBlock, MaxBlocks);
        var result = new ulong[blocks];
        var h = 14695981039346656037UL;
        for (var b = 0; b < blocks; b++)
        {
            for (var i = b * CharsPerBlock; i < (b + 1) * CharsPerBlock; i++)
            {
                h = Mix(h, text[i]);
            }
            result[b] = h;
        }
        return result;
    }

    /// <summary>FNV-1a over the value's bytes, chained from the previous block's hash.</summary>
    private static ulong Mix(ulong h, ulong value)
    {
        for (var i = 0; i < 8; i++)
        {
            h ^= (value >> (i * 8)) & 0xFF;
            h *= 1099511628211UL;
        }
        return h;
    }
}
