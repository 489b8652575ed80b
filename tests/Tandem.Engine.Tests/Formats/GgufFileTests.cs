using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Formats;

public class GgufFileTests
{
    [Fact]
    public void Open_Stories260K_ReadsHeaderAndMetadata()
    {
        using var gguf = GgufFile.Open(TestModels.Stories260K);
        Assert.Equal(3, gguf.Version);
        Assert.Equal("llama", gguf.Architecture);
        Assert.Equal("llama", gguf.Metadata["tokenizer.ggml.model"]);
        var tokens = Assert.IsType<string[]>(gguf.Metadata["tokenizer.ggml.tokens"]);
        Assert.Equal(512, tokens.Length);
        Assert.Equal("<unk>", tokens[0]);
        Assert.True(gguf.TryGetInt("llama.embedding_length", out var dim));
        Assert.Equal(64, dim);
        Assert.True(gguf.TryGetInt("llama.block_count", out var layers));
        Assert.Equal(5, layers);
        Assert.True(gguf.TryGetFloat("llama.attention.layer_norm_rms_epsilon", out var eps));
        Assert.Equal(1e-5, eps, 1e-9);
        Assert.Equal(32, gguf.Alignment);
        Assert.Equal(0, gguf.DataOffset % 32);
    }

    [Fact]
    public unsafe void Open_Stories260K_TensorsHaveRowMajorShapes()
    {
        using var gguf = GgufFile.Open(TestModels.Stories260K);
        var embd = gguf.TryGetTensor("token_embd.weight");
        Assert.NotNull(embd);
        Assert.Equal(TensorType.F32, embd.Type);
        Assert.Equal([512L, 64L], embd.Shape);
        Assert.Equal(512, embd.Rows);
        Assert.Equal(64, embd.Cols);
        Assert.Equal(512 * 64 * 4, embd.ByteLength);
        var ffnUp = gguf.TryGetTensor("blk.0.ffn_up.weight");
        Assert.NotNull(ffnUp);
        Assert.Equal([172L, 64L], ffnUp.Shape);
        var norm = gguf.TryGetTensor("blk.4.attn_norm.weight");
        Assert.NotNull(norm);
        Assert.Equal([64L], norm.Shape);
        // Values are finite, non-trivial floats.
        var values = new ReadOnlySpan<float>(embd.Data, 512 * 64);
        Assert.All(values.ToArray(), v => Assert.True(float.IsFinite(v)));
        Assert.Contains(values.ToArray(), v => v != 0);
    }
}
