using Tandem.Engine.Models;

namespace Tandem.Engine.Formats.Gguf;

/// <summary>Builds a <see cref="ModelConfig"/> from GGUF metadata (llama.cpp key names).</summary>
internal static class GgufModelConfig
{
    public static ModelConfig FromFile(GgufFile gguf)
    {
        var path = gguf.Path;
        var arch = gguf.Architecture
            ?? throw new ModelFormatException(path, "missing metadata 'general.architecture'");
        if (arch is not ("llama" or "mistral" or "qwen2" or "qwen3"))
        {
            throw new ModelFormatException(path, $"unsupported architecture '{arch}'; supported: llama, mistral, qwen2, qwen3");
        }
        int Required(string suffix) => Int(gguf, $"{arch}.{suffix}") ?? throw new ModelFormatException(path, $"missing metadata '{arch}.{suffix}'");

        var dim = Required("embedding_length");
        var heads = Required("attention.head_count");
        var vocab = Int(gguf, $"{arch}.vocab_size")
            ?? (gguf.Metadata.GetValueOrDefault("tokenizer.ggml.tokens") as string[])?.Length
            ?? gguf.TryGetTensor("token_embd.weight")?.Rows
            ?? throw new ModelFormatException(path, "cannot determine the vocabulary size");

        RopeScaling? scaling = null;
        var scalingType = gguf.GetString($"{arch}.rope.scaling.type");
        if (scalingType is not (null or "none"))
        {
            if (scalingType != "linear")
            {
                throw new ModelFormatException(path, $"unsupported rope scaling type '{scalingType}'; supported: linear");
            }
            scaling = new RopeScaling("linear", (float)(Float(gguf, $"{arch}.rope.scaling.factor") ?? 1.0));
        }

        var config = new ModelConfig
        {
            Architecture = arch,
            HiddenSize = dim,
            IntermediateSize = Required("feed_forward_length"),
            NumLayers = Required("block_count"),
            NumHeads = heads,
            NumKvHeads = Int(gguf, $"{arch}.attention.head_count_kv") ?? heads,
            HeadDim = Int(gguf, $"{arch}.attention.key_length") ?? (heads > 0 ? dim / heads : 0),
            VocabSize = vocab,
            ContextLength = Int(gguf, $"{arch}.context_length") ?? 2048,
            RmsNormEps = (float)(Float(gguf, $"{arch}.attention.layer_norm_rms_epsilon") ?? 1e-5),
            RopeTheta = (float)(Float(gguf, $"{arch}.rope.freq_base") ?? 10000),
            RopeScaling = scaling,
            RopeStyle = arch is "llama" or "mistral" ? RopeStyle.Interleaved : RopeStyle.Neox,
            AttentionBias = gguf.TryGetTensor("blk.0.attn_q.bias") is not null,
            QkNorm = gguf.TryGetTensor("blk.0.attn_q_norm.weight") is not null,
            TiedEmbeddings = gguf.TryGetTensor("output.weight") is null,
        };
        config.Validate(path);
        return config;
    }

    private static int? Int(GgufFile gguf, string key)
    {
        if (!gguf.Metadata.ContainsKey(key))
        {
            return null;
        }
        if (!gguf.TryGetInt(key, out var v))
        {
            throw new ModelFormatException(gguf.Path, $"metadata '{key}' is {Describe(gguf.Metadata[key])}, expected an integer");
        }
        if (v is < int.MinValue or > int.MaxValue)
        {
            throw new ModelFormatException(gguf.Path, $"metadata '{key}' value {v} is out of range");
        }
        return (int)v;
    }

    private static double? Float(GgufFile gguf, string key)
    {
        if (!gguf.Metadata.ContainsKey(key))
        {
            return null;
        }
        return gguf.TryGetFloat(key, out var v)
            ? v
            : throw new ModelFormatException(gguf.Path, $"metadata '{key}' is {Describe(gguf.Metadata[key])}, expected a number");
    }

    private static string Describe(object value) => value is Array a ? $"an array of {a.Length}" : $"a {value.GetType().Name}";
}
