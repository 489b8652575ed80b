using System.Text.Json;
using Tandem.Engine.Models;

namespace Tandem.Engine.Formats.HuggingFace;

/// <summary>Reads Hugging Face <c>config.json</c> and <c>generation_config.json</c>.</summary>
internal static class HfConfig
{
    private static readonly Dictionary<string, string> ArchitectureClasses = new(StringComparer.Ordinal)
    {
        ["LlamaForCausalLM"] = "llama",
        ["MistralForCausalLM"] = "mistral",
        ["Qwen2ForCausalLM"] = "qwen2",
        ["Qwen3ForCausalLM"] = "qwen3",
    };

    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 64, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>Parses config.json. <paramref name="embeddingRows"/> supplies vocab_size when the file omits it.</summary>
    public static ModelConfig Parse(string path, bool tiedFallback, int? embeddingRows = null)
    {
        using var doc = ParseJson(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, "config.json is not a JSON object");
        }
        var arch = Architecture(path, root);
        var hidden = RequiredInt(path, root, "hidden_size");
        var heads = RequiredInt(path, root, "num_attention_heads");
        var kvHeads = OptionalInt(path, root, "num_key_value_heads") ?? heads;
        var headDim = OptionalInt(path, root, "head_dim") ?? (heads > 0 ? hidden / heads : 0);
        var vocab = OptionalInt(path, root, "vocab_size") ?? embeddingRows
            ?? throw new ModelFormatException(path, "config.json lacks vocab_size");
        var attentionBias = arch == "qwen2" || (OptionalBool(path, root, "attention_bias") ?? false);
        return new ModelConfig
        {
            Architecture = arch,
            HiddenSize = hidden,
            IntermediateSize = RequiredInt(path, root, "intermediate_size"),
            NumLayers = RequiredInt(path, root, "num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            ContextLength = OptionalInt(path, root, "max_position_embeddings") ?? 2048,
            RmsNormEps = (float)(OptionalDouble(path, root, "rms_norm_eps") ?? 1e-6),
            RopeTheta = (float)(OptionalDouble(path, root, "rope_theta") ?? 10000),
            RopeScaling = Scaling(path, root),
            RopeStyle = RopeStyle.Neox,
            AttentionBias = attentionBias,
            QkNorm = arch == "qwen3",
            TiedEmbeddings = (OptionalBool(path, root, "tie_word_embeddings") ?? false) || tiedFallback,
        };
    }

    public static GenerationDefaults ParseGeneration(string path)
    {
        using var doc = ParseJson(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, "generation_config.json is not a JSON object");
        }
        var eos = new List<int>();
        if (root.TryGetProperty("eos_token_id", out var e))
        {
            if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var id))
            {
                eos.Add(id);
            }
            else if (e.ValueKind == JsonValueKind.Array)
            {
                foreach (var x in e.EnumerateArray())
                {
                    if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt32(out var v))
                    {
                        throw new ModelFormatException(path, $"eos_token_id entry {x} is not an integer");
                    }
                    eos.Add(v);
                }
            }
            else if (e.ValueKind != JsonValueKind.Null)
            {
                throw new ModelFormatException(path, $"eos_token_id {e} is neither an integer nor a list");
            }
        }
        return new GenerationDefaults
        {
            Temperature = (float?)OptionalDouble(path, root, "temperature"),
            TopP = (float?)OptionalDouble(path, root, "top_p"),
            TopK = OptionalInt(path, root, "top_k"),
            RepetitionPenalty = (float?)OptionalDouble(path, root, "repetition_penalty"),
            EosTokenIds = eos,
        };
    }

    /// <summary>tokenizer_config.json's chat_template when it is a string.</summary>
    public static string? ChatTemplate(string path)
    {
        using var doc = ParseJson(path);
        return doc.RootElement.ValueKind == JsonValueKind.Object
            && doc.RootElement.TryGetProperty("chat_template", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()
            : null;
    }

    public static JsonDocument ParseJson(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            if (stream.Length > 256L << 20)
            {
                throw new ModelFormatException(path, $"JSON file of {stream.Length} bytes is too large");
            }
            return JsonDocument.Parse(stream, Options);
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(path, $"invalid JSON: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot read: {ex.Message}", ex);
        }
    }

    private static string Architecture(string path, JsonElement root)
    {
        var names = new List<string>();
        if (root.TryGetProperty("architectures", out var archs) && archs.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in archs.EnumerateArray())
            {
                if (a.ValueKind == JsonValueKind.String)
                {
                    var s = a.GetString()!;
                    if (ArchitectureClasses.TryGetValue(s, out var arch))
                    {
                        return arch;
                    }
                    names.Add(s);
                }
            }
        }
        if (root.TryGetProperty("model_type", out var mt) && mt.ValueKind == JsonValueKind.String)
        {
            var s = mt.GetString()!;
            if (s is "llama" or "mistral" or "qwen2" or "qwen3")
            {
                return s;
            }
            names.Add(s);
        }
        var found = names.Count == 0 ? "none given" : string.Join(", ", names.Select(n => $"'{n}'"));
        throw new ModelFormatException(path, $"unsupported architecture ({found}); supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM");
    }

    private static RopeScaling? Scaling(string path, JsonElement root)
    {
        if (!root.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (s.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(path, $"rope_scaling {s} is not an object");
        }
        string? type = null;
        if (s.TryGetProperty("rope_type", out var t) && t.ValueKind == JsonValueKind.String)
        {
            type = t.GetString();
        }
        else if (s.TryGetProperty("type", out t) && t.ValueKind == JsonValueKind.String)
        {
            type = t.GetString();
        }
        var factor = (float)(OptionalDouble(path, s, "factor") ?? 1.0);
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                return new RopeScaling("linear", factor);
            case "llama3":
                return new RopeScaling(
                    "llama3",
                    factor,
                    (float)(OptionalDouble(path, s, "low_freq_factor") ?? 1.0),
                    (float)(OptionalDouble(path, s, "high_freq_factor") ?? 4.0),
                    OptionalInt(path, s, "original_max_position_embeddings") ?? 8192);
            default:
                throw new ModelFormatException(path, $"unsupported rope_scaling type '{type ?? "(none)"}'; supported: llama3, linear");
        }
    }

    private static int RequiredInt(string path, JsonElement o, string key) =>
        OptionalInt(path, o, key) ?? throw new ModelFormatException(path, $"config lacks '{key}'");

    private static int? OptionalInt(string path, JsonElement o, string key)
    {
        if (!o.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
        {
            throw new ModelFormatException(path, $"'{key}' is {v}, expected an integer");
        }
        return i;
    }

    private static double? OptionalDouble(string path, JsonElement o, string key)
    {
        if (!o.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d))
        {
            throw new ModelFormatException(path, $"'{key}' is {v}, expected a number");
        }
        return d;
    }

    private static bool? OptionalBool(string path, JsonElement o, string key)
    {
        if (!o.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelFormatException(path, $"'{key}' is {v}, expected true or false"),
        };
    }
}
