using System.Text.Json;
using System.Text.RegularExpressions;
using Tandem.Engine.Models;

namespace Tandem.Engine.Tokenizers;

/// <summary>Reads a Hugging Face tokenizer.json (BPE model, byte-level or SentencePiece-style) and tokenizer_config.json.</summary>
internal static class HuggingFaceTokenizerReader
{
    private const int MaxVocabulary = 1 << 24;

    public static Tokenizer Read(JsonElement root, JsonElement? config, string path)
    {
        ModelFormatException Error(string problem) => new(path, problem);

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Error("tokenizer.json is not a JSON object");
        }
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw Error("tokenizer.json has no model object");
        }
        var modelType = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
            : model.TryGetProperty("merges", out _) ? "BPE" : null;
        if (modelType != "BPE")
        {
            throw Error($"unsupported tokenizer model type '{modelType ?? "(none)"}' (only BPE is supported)");
        }
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
        {
            throw Error("model.vocab is missing or not an object");
        }

        var byId = new Dictionary<int, string>();
        foreach (var entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id is < 0 or >= MaxVocabulary)
            {
                throw Error($"model.vocab[\"{entry.Name}\"] is not a valid token id");
            }
            byId[id] = entry.Name;
        }

        var added = new List<(int Id, string Content, bool Special)>();
        if (root.TryGetProperty("added_tokens", out var addedTokens) && addedTokens.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedTokens.EnumerateArray())
            {
                if (a.ValueKind != JsonValueKind.Object
                    || !a.TryGetProperty("id", out var idElement) || idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt32(out var id) || id is < 0 or >= MaxVocabulary
                    || !a.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                {
                    throw Error("added_tokens entries need an integer id and a string content");
                }
                var special = a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                added.Add((id, content.GetString()!, special));
                byId[id] = content.GetString()!;
            }
        }
        if (byId.Count == 0)
        {
            throw Error("model.vocab is empty");
        }

        var size = byId.Keys.Max() + 1;
        var tokens = new string[size];
        var types = new TokenType[size];
        for (var i = 0; i < size; i++)
        {
            if (byId.TryGetValue(i, out var text))
            {
                tokens[i] = text;
                types[i] = TokenType.Normal;
            }
            else
            {
                tokens[i] = $"[PAD{i}]";
                types[i] = TokenType.Unused;
            }
        }
        foreach (var (id, _, special) in added)
        {
            types[id] = special ? TokenType.Control : TokenType.UserDefined;
        }

        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mergesElement))
        {
            if (mergesElement.ValueKind != JsonValueKind.Array)
            {
                throw Error("model.merges is not an array");
            }
            foreach (var merge in mergesElement.EnumerateArray())
            {
                if (merge.ValueKind == JsonValueKind.String && merge.GetString() is { } text && text.IndexOf(' ', 1) > 0)
                {
                    merges.Add(text);
                }
                else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                    && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                {
                    merges.Add(merge[0].GetString() + " " + merge[1].GetString());
                }
                else
                {
                    throw Error($"model.merges entry {merge.GetRawText()} is neither \"a b\" nor [\"a\", \"b\"]");
                }
            }
        }

        var lookup = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < size; i++)
        {
            lookup.TryAdd(tokens[i], i);
        }
        int Find(string? content) => content is not null && lookup.TryGetValue(content, out var id) ? id : -1;
        int FindFirst(params string[] names) => names.Select(Find).FirstOrDefault(id => id >= 0, -1);

        var preTokenizer = root.TryGetProperty("pre_tokenizer", out var p) ? p : default;
        var normalizer = root.TryGetProperty("normalizer", out var nz) ? nz : default;
        var decoder = root.TryGetProperty("decoder", out var d) ? d : default;
        var byteLevel = FindComponent(preTokenizer, "ByteLevel") is not null || FindComponent(decoder, "ByteLevel") is not null;
        var metaspace = FindComponent(preTokenizer, "Metaspace");
        var byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        var sentencePiece = !byteLevel && (byteFallback || metaspace is not null || ReplacesSpaceWithMetaspace(normalizer)
            || FindComponent(decoder, "Metaspace") is not null);
        if (!byteLevel && !sentencePiece)
        {
            throw Error("unsupported BPE configuration: neither ByteLevel nor SentencePiece-style (byte_fallback/Metaspace)");
        }

        // tokenizer_config.json: bos/eos/unk/pad and add_bos_token; a TemplateProcessing post-processor can imply BOS.
        var bos = Find(ConfigToken(config, "bos_token"));
        var eos = Find(ConfigToken(config, "eos_token"));
        var pad = Find(ConfigToken(config, "pad_token"));
        var unk = Find(ConfigToken(config, "unk_token"));
        if (model.TryGetProperty("unk_token", out var unkElement) && unkElement.ValueKind == JsonValueKind.String)
        {
            unk = Find(unkElement.GetString());
        }
        bool? addBos = config is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("add_bos_token", out var ab)
            && ab.ValueKind is JsonValueKind.True or JsonValueKind.False ? ab.GetBoolean() : null;
        var templateBos = TemplateBos(root);
        if (templateBos is not null)
        {
            if (bos < 0)
            {
                bos = Find(templateBos);
            }
            addBos ??= bos >= 0 && Find(templateBos) == bos;
        }
        if (bos < 0)
        {
            bos = FindFirst("<s>", "<|begin_of_text|>");
        }
        if (eos < 0)
        {
            eos = FindFirst("</s>", "<|end_of_text|>", "<|endoftext|>");
        }
        if (unk >= 0)
        {
            types[unk] = TokenType.Unknown;
        }

        if (sentencePiece)
        {
            for (var i = 0; i < size; i++)
            {
                if (types[i] == TokenType.Normal && SentencePieceTokenizer.TryParseByteToken(tokens[i], out _))
                {
                    types[i] = TokenType.Byte;
                }
            }
            // Merge order defines priority: a piece scores minus the rank of the first merge producing it.
            var scores = new float[size];
            Array.Fill(scores, -(merges.Count + 1f));
            for (var rank = merges.Count - 1; rank >= 0; rank--)
            {
                var id = Find(merges[rank].Replace(" ", "", StringComparison.Ordinal));
                if (id >= 0)
                {
                    scores[id] = -rank;
                }
            }
            var addSpacePrefix = PrependsMetaspace(normalizer) || (metaspace is { } ms && MetaspacePrepends(ms));
            var ids = new SpecialTokenIds(bos, eos, unk, pad, -1, -1);
            return new SentencePieceTokenizer(tokens, scores, types, ids, addBos ?? true, addSpacePrefix);
        }

        var pattern = ByteLevelBpeTokenizer.Gpt2Pattern;
        var warnings = new List<string>();
        if (FindComponent(preTokenizer, "Split") is { } split && split.TryGetProperty("pattern", out var pat) && pat.ValueKind == JsonValueKind.Object)
        {
            if (pat.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String)
            {
                pattern = regex.GetString()!;
            }
            else if (pat.TryGetProperty("String", out var literal) && literal.ValueKind == JsonValueKind.String)
            {
                pattern = Regex.Escape(literal.GetString()!);
            }
        }
        if (ByteLevelBpeTokenizer.PatternError(pattern) is { } patternError)
        {
            throw Error($"pre-tokenizer regex is not supported: {patternError}");
        }
        var pre = pattern switch
        {
            ByteLevelBpeTokenizer.Gpt2Pattern => "gpt2",
            ByteLevelBpeTokenizer.Llama3Pattern => "llama-bpe",
            ByteLevelBpeTokenizer.Qwen2Pattern => "qwen2",
            _ => "default",
        };
        if (pre == "default")
        {
            warnings.Add("pre-tokenizer pattern has no GGUF name; GGUF export will use the GPT-2 pattern");
        }
        var ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
        var bpeIds = new SpecialTokenIds(bos, eos, unk, pad, -1, -1);
        var result = new ByteLevelBpeTokenizer(tokens, types, [.. merges], bpeIds, addBos ?? false, pre, pattern, ignoreMerges);
        result.WarningList.AddRange(warnings);
        return result;
    }

    /// <summary>The component of the given type, looking inside Sequence components.</summary>
    private static JsonElement? FindComponent(JsonElement element, string type)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        if (element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type)
        {
            return element;
        }
        foreach (var list in new[] { "pretokenizers", "normalizers", "decoders", "processors" })
        {
            if (element.TryGetProperty(list, out var items) && items.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in items.EnumerateArray())
                {
                    if (FindComponent(item, type) is { } found)
                    {
                        return found;
                    }
                }
            }
        }
        return null;
    }

    private static IEnumerable<JsonElement> Components(JsonElement element, string type)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            yield break;
        }
        if (element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type)
        {
            yield return element;
        }
        if (element.TryGetProperty("normalizers", out var items) && items.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in items.EnumerateArray())
            {
                foreach (var found in Components(item, type))
                {
                    yield return found;
                }
            }
        }
    }

    private static bool ReplacesSpaceWithMetaspace(JsonElement normalizer) =>
        Components(normalizer, "Replace").Any(r =>
            r.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object
            && pattern.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String && s.GetString() == " "
            && r.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() == "\u2581");

    private static bool PrependsMetaspace(JsonElement normalizer) =>
        Components(normalizer, "Prepend").Any(p =>
            p.TryGetProperty("prepend", out var s) && s.ValueKind == JsonValueKind.String && s.GetString() == "\u2581");

    private static bool MetaspacePrepends(JsonElement metaspace)
    {
        if (metaspace.TryGetProperty("prepend_scheme", out var scheme) && scheme.ValueKind == JsonValueKind.String)
        {
            return scheme.GetString() is "always" or "first";
        }
        return !metaspace.TryGetProperty("add_prefix_space", out var add) || add.ValueKind != JsonValueKind.False;
    }

    private static string? ConfigToken(JsonElement? config, string key)
    {
        if (config is not { ValueKind: JsonValueKind.Object } c || !c.TryGetProperty(key, out var value))
        {
            return null;
        }
        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String => content.GetString(),
            _ => null,
        };
    }

    /// <summary>The special token a TemplateProcessing post-processor puts before a single sequence, if any.</summary>
    private static string? TemplateBos(JsonElement root)
    {
        if (!root.TryGetProperty("post_processor", out var post) || FindComponent(post, "TemplateProcessing") is not { } template
            || !template.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0)
        {
            return null;
        }
        var first = single[0];
        return first.ValueKind == JsonValueKind.Object && first.TryGetProperty("SpecialToken", out var special)
            && special.ValueKind == JsonValueKind.Object && special.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
            ? id.GetString()
            : null;
    }
}
