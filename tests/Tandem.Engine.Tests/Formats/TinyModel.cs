using System.Runtime.InteropServices;
using System.Text.Json;
using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Formats.HuggingFace;
using Tandem.Engine.Formats.Safetensors;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Formats;

/// <summary>A tiny random llama-shaped model that tests write as GGUF or as a Hugging Face directory.</summary>
internal sealed class TinyModel
{
    public const int Dim = 8;
    public const int Heads = 2;
    public const int KvHeads = 1;
    public const int HeadDim = 4;
    public const int Ffn = 16;
    public const int Vocab = 32;
    public const int Layers = 2;

    public TinyModel(bool tied = false, bool bias = false, bool qkNorm = false, int seed = 1)
    {
        var rng = new Random(seed);
        void Add(string name, params long[] shape)
        {
            var count = (int)shape.Aggregate(1L, (a, d) => a * d);
            var values = new float[count];
            for (var i = 0; i < count; i++)
            {
                values[i] = (float)(rng.NextDouble() - 0.5);
            }
            Tensors.Add((name, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
        }

        Add("token_embd.weight", Vocab, Dim);
        Add("output_norm.weight", Dim);
        if (!tied)
        {
            Add("output.weight", Vocab, Dim);
        }
        for (var i = 0; i < Layers; i++)
        {
            Add($"blk.{i}.attn_norm.weight", Dim);
            Add($"blk.{i}.attn_q.weight", Heads * HeadDim, Dim);
            Add($"blk.{i}.attn_k.weight", KvHeads * HeadDim, Dim);
            Add($"blk.{i}.attn_v.weight", KvHeads * HeadDim, Dim);
            Add($"blk.{i}.attn_output.weight", Dim, Heads * HeadDim);
            Add($"blk.{i}.ffn_norm.weight", Dim);
            Add($"blk.{i}.ffn_gate.weight", Ffn, Dim);
            Add($"blk.{i}.ffn_up.weight", Ffn, Dim);
            Add($"blk.{i}.ffn_down.weight", Dim, Ffn);
            if (bias)
            {
                Add($"blk.{i}.attn_q.bias", Heads * HeadDim);
                Add($"blk.{i}.attn_k.bias", KvHeads * HeadDim);
                Add($"blk.{i}.attn_v.bias", KvHeads * HeadDim);
            }
            if (qkNorm)
            {
                Add($"blk.{i}.attn_q_norm.weight", HeadDim);
                Add($"blk.{i}.attn_k_norm.weight", HeadDim);
            }
        }
    }

    /// <summary>Canonical name, row-major shape, F32 bytes.</summary>
    public List<(string Name, long[] Shape, byte[] Data)> Tensors { get; } = [];

    public byte[] Data(string name) => Tensors.Single(t => t.Name == name).Data;

    public GgufWriter ToGguf(string arch = "llama", Func<string, bool>? include = null)
    {
        var w = new GgufWriter();
        w.AddMetadata("general.architecture", arch);
        w.AddMetadata($"{arch}.embedding_length", (uint)Dim);
        w.AddMetadata($"{arch}.feed_forward_length", (uint)Ffn);
        w.AddMetadata($"{arch}.block_count", (uint)Layers);
        w.AddMetadata($"{arch}.attention.head_count", (uint)Heads);
        w.AddMetadata($"{arch}.attention.head_count_kv", (uint)KvHeads);
        w.AddMetadata($"{arch}.attention.layer_norm_rms_epsilon", 1e-6f);
        w.AddMetadata($"{arch}.context_length", (uint)128);
        w.AddMetadata("tokenizer.ggml.tokens", Enumerable.Range(0, Vocab).Select(i => $"t{i}").ToArray());
        foreach (var (name, shape, data) in Tensors)
        {
            if (include is null || include(name))
            {
                w.AddTensor(name, TensorType.F32, shape, data);
            }
        }
        return w;
    }

    /// <summary>Writes config.json, generation_config.json and the weights (one file or <paramref name="shards"/> shards).</summary>
    public void WriteHf(string dir, string architecture = "LlamaForCausalLM", int shards = 1, bool tieFlag = false, Dictionary<string, object>? extraConfig = null)
    {
        var config = new Dictionary<string, object>
        {
            ["architectures"] = new[] { architecture },
            ["hidden_size"] = Dim,
            ["intermediate_size"] = Ffn,
            ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads,
            ["vocab_size"] = Vocab,
            ["max_position_embeddings"] = 256,
            ["rms_norm_eps"] = 1e-6,
            ["rope_theta"] = 500000.0,
            ["tie_word_embeddings"] = tieFlag,
        };
        foreach (var (k, v) in extraConfig ?? [])
        {
            config[k] = v;
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config));
        File.WriteAllText(
            Path.Combine(dir, "generation_config.json"),
            """{"bos_token_id": 1, "eos_token_id": [2, 7], "temperature": 0.6, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.1}""");
        var hf = Tensors.Select(t => (Name: HfTensorNames.FromCanonical(t.Name)!, t.Shape, t.Data)).ToList();
        hf.Add(("model.layers.0.self_attn.rotary_emb.inv_freq", [HeadDim / 2], new byte[HeadDim / 2 * 4]));
        if (shards == 1)
        {
            var w = new SafetensorsWriter();
            foreach (var (name, shape, data) in hf)
            {
                w.AddTensor(name, TensorType.F32, shape, data);
            }
            w.Write(Path.Combine(dir, "model.safetensors"));
            return;
        }
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var s = 0; s < shards; s++)
        {
            var file = $"model-{s + 1:00000}-of-{shards:00000}.safetensors";
            var w = new SafetensorsWriter();
            for (var i = s; i < hf.Count; i += shards)
            {
                w.AddTensor(hf[i].Name, TensorType.F32, hf[i].Shape, hf[i].Data);
                weightMap[hf[i].Name] = file;
            }
            w.Write(Path.Combine(dir, file));
        }
        File.WriteAllText(
            Path.Combine(dir, "model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
    }
}
