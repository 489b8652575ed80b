using System.Text.Json;
using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Formats.HuggingFace;
using Tandem.Engine.Formats.Safetensors;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Models;

/// <summary>Opens model files: a .gguf file, a Hugging Face directory, or a .safetensors file inside one.</summary>
public static class ModelFiles
{
    private static readonly IReadOnlyDictionary<string, object> NoMetadata = new Dictionary<string, object>();

    /// <summary>Opens and validates a model; every defect is a <see cref="ModelFormatException"/> naming the file.</summary>
    public static ModelArtifact Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            return OpenHf(Path.GetFullPath(path));
        }
        if (!File.Exists(path))
        {
            throw new ModelFormatException(path, "no such model file or directory");
        }
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            || path.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase)
            || Path.GetFileName(path) == "config.json")
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            return OpenHf(dir);
        }
        return OpenGguf(path);
    }

    /// <summary>Checks that every tensor the forward pass needs exists with the shape <paramref name="config"/> implies.</summary>
    public static void ValidateTensors(string path, ModelConfig config, ModelWeights weights)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        long dim = config.HiddenSize, vocab = config.VocabSize, ffn = config.IntermediateSize;
        long q = config.QDim, kv = config.KvDim, hd = config.HeadDim;

        void Check(string name, bool vector, params long[] shape)
        {
            var t = weights.TryGet(name) ?? throw new ModelFormatException(path, $"missing tensor '{name}'");
            if (!t.Shape.SequenceEqual(shape))
            {
                throw new ModelFormatException(path, $"tensor '{name}' has shape [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shape)}]");
            }
            if (vector && t.Type == TensorType.Q8_0)
            {
                throw new ModelFormatException(path, $"tensor '{name}' is {t.Type}; norms and biases must be F32, F16 or BF16");
            }
        }

        void Optional(string name, bool vector, params long[] shape)
        {
            if (weights.TryGet(name) is not null)
            {
                Check(name, vector, shape);
            }
        }

        Check("token_embd.weight", false, vocab, dim);
        Check("output_norm.weight", true, dim);
        if (!config.TiedEmbeddings)
        {
            Check("output.weight", false, vocab, dim);
        }
        for (var i = 0; i < config.NumLayers; i++)
        {
            var b = $"blk.{i}.";
            Check(b + "attn_norm.weight", true, dim);
            Check(b + "attn_q.weight", false, q, dim);
            Check(b + "attn_k.weight", false, kv, dim);
            Check(b + "attn_v.weight", false, kv, dim);
            Check(b + "attn_output.weight", false, dim, q);
            Check(b + "ffn_norm.weight", true, dim);
            Check(b + "ffn_gate.weight", false, ffn, dim);
            Check(b + "ffn_up.weight", false, ffn, dim);
            Check(b + "ffn_down.weight", false, dim, ffn);
            if (config.AttentionBias)
            {
                Check(b + "attn_q.bias", true, q);
                Check(b + "attn_k.bias", true, kv);
                Check(b + "attn_v.bias", true, kv);
            }
            else
            {
                Optional(b + "attn_q.bias", true, q);
                Optional(b + "attn_k.bias", true, kv);
                Optional(b + "attn_v.bias", true, kv);
            }
            if (config.QkNorm)
            {
                Check(b + "attn_q_norm.weight", true, hd);
                Check(b + "attn_k_norm.weight", true, hd);
            }
        }
    }

    private static ModelArtifact OpenGguf(string path)
    {
        var gguf = GgufFile.Open(path);
        try
        {
            var config = GgufModelConfig.FromFile(gguf);
            var weights = new ModelWeights(path, gguf.Tensors, [gguf]);
            ValidateTensors(path, config, weights);
            var name = Path.GetFileName(path);
            if (name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            {
                name = name[..^5];
            }
            return new ModelArtifact(
                path, "gguf", name, config, weights, gguf.Metadata, null, GenerationDefaults.None, gguf.GetString("tokenizer.chat_template"));
        }
        catch (ModelFormatException)
        {
            gguf.Dispose();
            throw;
        }
        catch (Exception e)
        {
            gguf.Dispose();
            throw new ModelFormatException(path, $"cannot load model: {e.Message}", e);
        }
    }

    private static ModelArtifact OpenHf(string dir)
    {
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath))
        {
            throw new ModelFormatException(dir, "not a model directory: config.json not found");
        }
        var files = new List<SafetensorsFile>();
        try
        {
            var tensors = new List<WeightTensor>();
            var indexPath = Path.Combine(dir, "model.safetensors.index.json");
            var singlePath = Path.Combine(dir, "model.safetensors");
            if (File.Exists(indexPath))
            {
                LoadSharded(dir, indexPath, files, tensors);
            }
            else if (File.Exists(singlePath))
            {
                files.Add(SafetensorsFile.Open(singlePath));
                Collect(files[0], tensors, null);
            }
            else
            {
                var found = Directory.GetFiles(dir, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
                if (found.Length == 0)
                {
                    throw new ModelFormatException(dir, "no model.safetensors or model.safetensors.index.json found");
                }
                foreach (var f in found)
                {
                    var st = SafetensorsFile.Open(f);
                    files.Add(st);
                    Collect(st, tensors, null);
                }
            }
            var weights = new ModelWeights(dir, tensors, files);
            var embd = weights.TryGet("token_embd.weight");
            var config = HfConfig.Parse(configPath, tiedFallback: weights.TryGet("output.weight") is null, embd?.Shape.Count == 2 ? (int)embd.Shape[0] : null);
            config.Validate(configPath);
            ValidateTensors(dir, config, weights);

            var genPath = Path.Combine(dir, "generation_config.json");
            var generation = File.Exists(genPath) ? HfConfig.ParseGeneration(genPath) : GenerationDefaults.None;
            string? template = null;
            var tokCfg = Path.Combine(dir, "tokenizer_config.json");
            if (File.Exists(tokCfg))
            {
                template = HfConfig.ChatTemplate(tokCfg);
            }
            var jinja = Path.Combine(dir, "chat_template.jinja");
            if (template is null && File.Exists(jinja))
            {
                template = File.ReadAllText(jinja);
            }
            var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(dir));
            return new ModelArtifact(dir, "safetensors", name, config, weights, NoMetadata, dir, generation, template);
        }
        catch (Exception e)
        {
            foreach (var f in files)
            {
                f.Dispose();
            }
            if (e is ModelFormatException)
            {
                throw;
            }
            throw new ModelFormatException(dir, $"cannot load model: {e.Message}", e);
        }
    }

    private static void LoadSharded(string dir, string indexPath, List<SafetensorsFile> files, List<WeightTensor> tensors)
    {
        var byShard = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        using (var doc = HfConfig.ParseJson(indexPath))
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(indexPath, "index has no weight_map object");
            }
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw new ModelFormatException(indexPath, $"weight_map entry '{entry.Name}' is not a file name");
                }
                var shard = entry.Value.GetString()!;
                if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or "..")
                {
                    throw new ModelFormatException(indexPath, $"weight_map entry '{entry.Name}' names an invalid shard '{shard}'");
                }
                if (!byShard.TryGetValue(shard, out var set))
                {
                    byShard[shard] = set = new HashSet<string>(StringComparer.Ordinal);
                }
                set.Add(entry.Name);
            }
        }
        foreach (var (shard, names) in byShard.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var shardPath = Path.Combine(dir, shard);
            if (!File.Exists(shardPath))
            {
                throw new ModelFormatException(indexPath, $"shard '{shard}' listed in weight_map not found");
            }
            var st = SafetensorsFile.Open(shardPath);
            files.Add(st);
            foreach (var n in names)
            {
                if (st.TryGetTensor(n) is null)
                {
                    throw new ModelFormatException(shardPath, $"tensor '{n}' listed in the index is missing from this shard");
                }
            }
            Collect(st, tensors, names);
        }
    }

    private static unsafe void Collect(SafetensorsFile file, List<WeightTensor> into, HashSet<string>? only)
    {
        foreach (var t in file.Tensors)
        {
            if (only is not null && !only.Contains(t.Name))
            {
                continue;
            }
            var canonical = HfTensorNames.ToCanonical(t.Name);
            if (canonical is not null)
            {
                into.Add(new WeightTensor(canonical, t.Type, t.Shape.ToArray(), t.Data, t.ByteLength));
            }
        }
    }
}
