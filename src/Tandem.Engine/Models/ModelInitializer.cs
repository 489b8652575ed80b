using System.Globalization;
using System.Text.Json;
using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Formats.HuggingFace;
using Tandem.Engine.Formats.Safetensors;
using Tandem.Engine.Tensors;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Models;

/// <summary>What `tandem model init` writes.</summary>
public sealed record ModelInitOptions
{
    public ModelPreset Preset { get; init; } = ModelPresets.Tiny;

    /// <summary>"gguf" (one file) or "safetensors" (a Hugging Face directory).</summary>
    public string Format { get; init; } = "gguf";

    /// <summary>Encoding of the matrices; norm weights stay F32. Q8_0 matrices whose rows are not a multiple of 32 fall back to F16.</summary>
    public TensorType WeightType { get; init; } = TensorType.F32;

    public ulong Seed { get; init; } = 1;

    /// <summary>A GGUF file whose tokenizer to reuse (e.g. stories260K.gguf); null = the built-in 512-token vocabulary.</summary>
    public string? VocabularyFrom { get; init; }

    public static TensorType ParseWeightType(string name) => name.ToLowerInvariant() switch
    {
        "f32" => TensorType.F32,
        "f16" => TensorType.F16,
        "bf16" => TensorType.BF16,
        "q8_0" => TensorType.Q8_0,
        _ => throw new ArgumentException($"unknown weight type '{name}'; choose f32, f16, bf16 or q8_0", nameof(name)),
    };
}

/// <summary>
/// Writes deterministic random-weight llama models in the real file formats. The GGUF and the Hugging Face
/// variant of one preset and seed compute the same function (q/k rows are reordered for the rotate-half
/// RoPE layout), so either can stand in for the other in tests.
/// </summary>
public static class ModelInitializer
{
    /// <summary>Writes the model and returns the path written (the .gguf file or the directory).</summary>
    public static string Write(string outPath, ModelInitOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(outPath);
        ArgumentNullException.ThrowIfNull(options);
        var tokenizer = options.VocabularyFrom is { } source ? VocabularyOf(source) : BuiltinVocabulary.Create();
        var gguf = options.Format.ToLowerInvariant() switch
        {
            "gguf" => true,
            "safetensors" => false,
            _ => throw new ArgumentException($"unknown format '{options.Format}'; choose gguf or safetensors", nameof(options)),
        };
        if (!gguf && options.WeightType == TensorType.Q8_0)
        {
            throw new ArgumentException("safetensors has no Q8_0 encoding; use --format gguf or another --dtype", nameof(options));
        }
        var config = RandomModel.Config(options.Preset, tokenizer.VocabSize, gguf ? RopeStyle.Interleaved : RopeStyle.Neox);
        var tensors = RandomModel.Tensors(config, options.Seed);
        if (gguf)
        {
            WriteGguf(outPath, options, config, tensors, tokenizer);
        }
        else
        {
            WriteHuggingFace(outPath, options, config, tensors, tokenizer);
        }
        return outPath;
    }

    private static Tokenizer VocabularyOf(string path)
    {
        using var file = GgufFile.Open(path);
        return TokenizerFactory.FromGgufMetadata(file.Metadata, path);
    }

    private static TensorType TypeFor(FloatTensor t, TensorType wanted)
    {
        if (t.Shape.Length != 2)
        {
            return TensorType.F32;
        }
        return wanted == TensorType.Q8_0 && t.Shape[1] % 32 != 0 ? TensorType.F16 : wanted;
    }

    private static void WriteGguf(string path, ModelInitOptions o, ModelConfig c, List<FloatTensor> tensors, Tokenizer tokenizer)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }
        var writer = new GgufWriter()
            .AddMetadata("general.architecture", "llama")
            .AddMetadata("general.name", $"tandem-random-{o.Preset.Name}")
            .AddMetadata("general.description", $"random weights, seed {o.Seed}; written by tandem model init")
            .AddMetadata("llama.context_length", (uint)c.ContextLength)
            .AddMetadata("llama.embedding_length", (uint)c.HiddenSize)
            .AddMetadata("llama.block_count", (uint)c.NumLayers)
            .AddMetadata("llama.feed_forward_length", (uint)c.IntermediateSize)
            .AddMetadata("llama.attention.head_count", (uint)c.NumHeads)
            .AddMetadata("llama.attention.head_count_kv", (uint)c.NumKvHeads)
            .AddMetadata("llama.attention.layer_norm_rms_epsilon", c.RmsNormEps)
            .AddMetadata("llama.rope.freq_base", c.RopeTheta)
            .AddMetadata("llama.rope.dimension_count", (uint)c.HeadDim)
            .AddMetadata("llama.vocab_size", (uint)c.VocabSize);
        foreach (var (key, value) in TokenizerExport.ToGgufMetadata(tokenizer))
        {
            writer.AddMetadata(key, value);
        }
        foreach (var t in tensors)
        {
            var type = TypeFor(t, o.WeightType);
            writer.AddTensor(t.Name, type, t.Shape, TensorConversion.Quantize(type, t.Values));
        }
        writer.Write(path);
    }

    private static void WriteHuggingFace(string dir, ModelInitOptions o, ModelConfig c, List<FloatTensor> tensors, Tokenizer tokenizer)
    {
        Directory.CreateDirectory(dir);
        var writer = new SafetensorsWriter().AddMetadata("format", "pt");
        foreach (var t in tensors)
        {
            var values = t.Values;
            if (t.Name.EndsWith("attn_q.weight", StringComparison.Ordinal))
            {
                values = RandomModel.InterleavedToNeoxRows(values, c.NumHeads, c.HeadDim, c.HiddenSize);
            }
            else if (t.Name.EndsWith("attn_k.weight", StringComparison.Ordinal))
            {
                values = RandomModel.InterleavedToNeoxRows(values, c.NumKvHeads, c.HeadDim, c.HiddenSize);
            }
            var type = TypeFor(t, o.WeightType);
            var name = HfTensorNames.FromCanonical(t.Name) ?? throw new InvalidOperationException($"no Hugging Face name for {t.Name}");
            writer.AddTensor(name, type, t.Shape, TensorConversion.Quantize(type, values));
        }
        writer.Write(Path.Combine(dir, "model.safetensors"));

        var torchType = o.WeightType switch
        {
            TensorType.F16 => "float16",
            TensorType.BF16 => "bfloat16",
            _ => "float32",
        };
        var configJson = new Dictionary<string, object?>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" },
            ["model_type"] = "llama",
            ["hidden_size"] = c.HiddenSize,
            ["intermediate_size"] = c.IntermediateSize,
            ["num_hidden_layers"] = c.NumLayers,
            ["num_attention_heads"] = c.NumHeads,
            ["num_key_value_heads"] = c.NumKvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.ContextLength,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["tie_word_embeddings"] = c.TiedEmbeddings,
            ["attention_bias"] = false,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = torchType,
            ["bos_token_id"] = tokenizer.BosId,
            ["eos_token_id"] = tokenizer.EosId,
        };
        var options = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(configJson, options));
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["bos_token_id"] = tokenizer.BosId,
            ["eos_token_id"] = tokenizer.EosId,
        }, options));
        TokenizerExport.WriteHuggingFaceFiles(tokenizer, dir);
        File.WriteAllText(Path.Combine(dir, "README.md"), string.Create(CultureInfo.InvariantCulture,
            $"Random-weight llama model ({o.Preset.Name}, seed {o.Seed}) written by `tandem model init`. Not trained: output is noise.\n"));
    }
}
