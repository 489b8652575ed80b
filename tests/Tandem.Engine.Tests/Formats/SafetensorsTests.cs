using System.Text.Json;
using Tandem.Engine.Formats.HuggingFace;
using Tandem.Engine.Formats.Safetensors;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Formats;

public class SafetensorsTests
{
    [Fact]
    public unsafe void Write_ThreeDtypes_RoundTripExactBytesAndAlignedHeader()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "x.safetensors");
        var a = Enumerable.Range(0, 24).Select(i => (byte)i).ToArray();
        var b = Enumerable.Range(0, 6).Select(i => (byte)(100 + i)).ToArray();
        var c = Enumerable.Range(0, 4).Select(i => (byte)(200 + i)).ToArray();
        new SafetensorsWriter()
            .AddMetadata("format", "pt")
            .AddTensor("z.f32", TensorType.F32, [2, 3], a)
            .AddTensor("a.f16", TensorType.F16, [3], b)
            .AddTensor("m.bf16", TensorType.BF16, [1, 2], c)
            .Write(path);

        var bytes = File.ReadAllBytes(path);
        var headerLength = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, headerLength % 8);
        using var st = SafetensorsFile.Open(path);
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.Equal(["a.f16", "m.bf16", "z.f32"], st.Tensors.Select(t => t.Name));
        var f32 = st.TryGetTensor("z.f32")!;
        Assert.Equal(TensorType.F32, f32.Type);
        Assert.Equal([2L, 3L], f32.Shape);
        Assert.Equal(a, new ReadOnlySpan<byte>(f32.Data, 24).ToArray());
        Assert.Equal(b, new ReadOnlySpan<byte>(st.TryGetTensor("a.f16")!.Data, 6).ToArray());
        var bf16 = st.TryGetTensor("m.bf16")!;
        Assert.Equal(TensorType.BF16, bf16.Type);
        Assert.Equal(c, new ReadOnlySpan<byte>(bf16.Data, 4).ToArray());
        Assert.Equal(8 + headerLength, st.DataOffset);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public unsafe void Open_HfDirectory_MapsNamesAndReadsConfigs(int shards)
    {
        using var dir = TestModels.CreateTempDirectory();
        var tiny = new TinyModel(tied: true);
        tiny.WriteHf(dir.Path, shards: shards, tieFlag: true);
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), """{"chat_template": "{{ messages }}"}""");

        using var model = ModelFiles.Open(dir.Path);
        Assert.Equal("safetensors", model.Format);
        Assert.Equal(dir.Path, model.HfDirectory);
        Assert.Equal(Path.GetFileName(dir.Path), model.Name);
        Assert.Empty(model.Metadata);
        Assert.Equal("{{ messages }}", model.ChatTemplate);
        var c = model.Config;
        Assert.Equal("llama", c.Architecture);
        Assert.Equal(TinyModel.Dim, c.HiddenSize);
        Assert.Equal(TinyModel.Ffn, c.IntermediateSize);
        Assert.Equal(TinyModel.Layers, c.NumLayers);
        Assert.Equal(TinyModel.Heads, c.NumHeads);
        Assert.Equal(TinyModel.KvHeads, c.NumKvHeads);
        Assert.Equal(TinyModel.HeadDim, c.HeadDim);
        Assert.Equal(TinyModel.Vocab, c.VocabSize);
        Assert.Equal(256, c.ContextLength);
        Assert.Equal(1e-6f, c.RmsNormEps);
        Assert.Equal(500000f, c.RopeTheta);
        Assert.Equal(RopeStyle.Neox, c.RopeStyle);
        Assert.True(c.TiedEmbeddings);
        Assert.Null(c.RopeScaling);

        Assert.Equal(tiny.Tensors.Count, model.Weights.All.Count); // inv_freq ignored
        foreach (var (name, shape, data) in tiny.Tensors)
        {
            var t = model.Weights.Get(name);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(data, new ReadOnlySpan<byte>(t.Data, (int)t.ByteLength).ToArray());
        }
        Assert.Null(model.Weights.TryGet("output.weight"));

        var g = model.GenerationDefaults;
        Assert.Equal([2, 7], g.EosTokenIds);
        Assert.Equal(0.6f, g.Temperature);
        Assert.Equal(0.9f, g.TopP);
        Assert.Equal(40, g.TopK);
        Assert.Equal(1.1f, g.RepetitionPenalty);
    }

    [Fact]
    public void Open_SafetensorsFilePath_OpensItsDirectory()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path);
        using var model = ModelFiles.Open(Path.Combine(dir.Path, "model.safetensors"));
        Assert.Equal(dir.Path, model.HfDirectory);
        Assert.False(model.Config.TiedEmbeddings);
        Assert.NotNull(model.Weights.TryGet("output.weight"));
    }

    [Fact]
    public void Open_Qwen2AndQwen3Configs_SetBiasAndQkNorm()
    {
        using var dir2 = TestModels.CreateTempDirectory();
        new TinyModel(bias: true).WriteHf(dir2.Path, "Qwen2ForCausalLM");
        using (var m = ModelFiles.Open(dir2.Path))
        {
            Assert.Equal("qwen2", m.Config.Architecture);
            Assert.True(m.Config.AttentionBias);
            Assert.False(m.Config.QkNorm);
            Assert.Equal([8L], m.Weights.Get("blk.1.attn_q.bias").Shape);
        }
        using var dir3 = TestModels.CreateTempDirectory();
        new TinyModel(qkNorm: true).WriteHf(dir3.Path, "Qwen3ForCausalLM", extraConfig: new() { ["head_dim"] = TinyModel.HeadDim });
        using var m3 = ModelFiles.Open(dir3.Path);
        Assert.Equal("qwen3", m3.Config.Architecture);
        Assert.True(m3.Config.QkNorm);
        Assert.False(m3.Config.AttentionBias);
        Assert.Equal([4L], m3.Weights.Get("blk.0.attn_k_norm.weight").Shape);
        Assert.Equal(RopeStyle.Neox, m3.Config.RopeStyle);
    }

    [Fact]
    public void Open_RopeScalingLlama3_ParsesAllFactors()
    {
        using var dir = TestModels.CreateTempDirectory();
        var scaling = new Dictionary<string, object>
        {
            ["rope_type"] = "llama3",
            ["factor"] = 8.0,
            ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        };
        new TinyModel().WriteHf(dir.Path, extraConfig: new() { ["rope_scaling"] = scaling });
        using var m = ModelFiles.Open(dir.Path);
        Assert.Equal(new RopeScaling("llama3", 8f, 1f, 4f, 8192), m.Config.RopeScaling);
    }

    [Fact]
    public void Open_RopeScalingLinearAndUnknown_ParsedOrRejected()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path, extraConfig: new() { ["rope_scaling"] = new Dictionary<string, object> { ["type"] = "linear", ["factor"] = 2.0 } });
        using (var m = ModelFiles.Open(dir.Path))
        {
            Assert.Equal(new RopeScaling("linear", 2f), m.Config.RopeScaling);
        }
        using var dir2 = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir2.Path, extraConfig: new() { ["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "yarn", ["factor"] = 4.0 } });
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir2.Path));
        Assert.Contains("rope_scaling type 'yarn'", ex.Message);
    }

    [Fact]
    public void Open_UnsupportedHfArchitecture_NamesIt()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path, "GPTNeoXForCausalLM", extraConfig: new() { ["model_type"] = "gpt_neox" });
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("unsupported architecture", ex.Message);
        Assert.Contains("GPTNeoXForCausalLM", ex.Message);
        Assert.Contains(dir.Path, ex.Message);
    }

    [Fact]
    public void Open_ShardMissingFromIndex_ThrowsNamingShard()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path, shards: 2);
        File.Delete(Path.Combine(dir.Path, "model-00002-of-00002.safetensors"));
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("model-00002-of-00002.safetensors", ex.Message);
    }

    [Fact]
    public void Open_IndexWithPathTraversal_Rejected()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path, shards: 2);
        var index = Path.Combine(dir.Path, "model.safetensors.index.json");
        File.WriteAllText(index, JsonSerializer.Serialize(new { weight_map = new Dictionary<string, string> { ["model.norm.weight"] = "../etc/passwd" } }));
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("invalid shard", ex.Message);
    }

    [Fact]
    public void Open_UnsupportedDtype_NamesTensorAndDtype()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "bad.safetensors");
        WriteRaw(path, """{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}""", new byte[16]);
        var ex = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("'ids'", ex.Message);
        Assert.Contains("'I64'", ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}}""", "outside")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}""", "needs 16")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}}""", "invalid data_offsets")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,16]}}""", "invalid dimension")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4]}}""", "needs dtype, shape and data_offsets")]
    [InlineData("""[1,2,3]""", "not a JSON object")]
    [InlineData("""{"w":""", "not valid JSON")]
    public void Open_HostileHeader_ThrowsModelFormatException(string header, string expected)
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "bad.safetensors");
        WriteRaw(path, header, new byte[16]);
        var ex = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Open_HugeHeaderLength_Rejected()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "bad.safetensors");
        var bytes = new byte[64];
        BitConverter.TryWriteBytes(bytes, 1L << 40);
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("exceeds the limit", ex.Message);
        BitConverter.TryWriteBytes(bytes, 1000L);
        File.WriteAllBytes(path, bytes);
        ex = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void HfTensorNames_MapsEveryKind()
    {
        Assert.Equal("token_embd.weight", HfTensorNames.ToCanonical("model.embed_tokens.weight"));
        Assert.Equal("output.weight", HfTensorNames.ToCanonical("lm_head.weight"));
        Assert.Equal("output_norm.weight", HfTensorNames.ToCanonical("model.norm.weight"));
        Assert.Equal("blk.12.attn_norm.weight", HfTensorNames.ToCanonical("model.layers.12.input_layernorm.weight"));
        Assert.Equal("blk.3.attn_k.bias", HfTensorNames.ToCanonical("model.layers.3.self_attn.k_proj.bias"));
        Assert.Equal("blk.0.attn_output.weight", HfTensorNames.ToCanonical("model.layers.0.self_attn.o_proj.weight"));
        Assert.Equal("blk.0.attn_q_norm.weight", HfTensorNames.ToCanonical("model.layers.0.self_attn.q_norm.weight"));
        Assert.Equal("blk.1.ffn_norm.weight", HfTensorNames.ToCanonical("model.layers.1.post_attention_layernorm.weight"));
        Assert.Equal("blk.1.ffn_down.weight", HfTensorNames.ToCanonical("model.layers.1.mlp.down_proj.weight"));
        Assert.Null(HfTensorNames.ToCanonical("model.layers.0.self_attn.rotary_emb.inv_freq"));
        Assert.Null(HfTensorNames.ToCanonical("model.layers.01.mlp.up_proj.weight"));
        Assert.Equal("model.layers.7.mlp.gate_proj.weight", HfTensorNames.FromCanonical("blk.7.ffn_gate.weight"));
    }

    internal static void WriteRaw(string path, string header, byte[] data)
    {
        var h = System.Text.Encoding.UTF8.GetBytes(header);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)h.Length));
        f.Write(h);
        f.Write(data);
    }
}
