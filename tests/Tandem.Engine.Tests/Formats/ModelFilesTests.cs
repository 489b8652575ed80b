using Tandem.Engine.Models;

namespace Tandem.Engine.Tests.Formats;

public class ModelFilesTests
{
    [Fact]
    public unsafe void Open_Stories260K_BuildsConfigAndWeights()
    {
        var path = TestModels.Stories260K;
        using var model = ModelFiles.Open(path);
        var c = model.Config;
        Assert.Equal("gguf", model.Format);
        Assert.Equal("stories260K", model.Name);
        Assert.Equal("llama", c.Architecture);
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(172, c.IntermediateSize);
        Assert.Equal(5, c.NumLayers);
        Assert.Equal(8, c.NumHeads);
        Assert.Equal(4, c.NumKvHeads);
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(512, c.VocabSize);
        Assert.Equal(1e-5f, c.RmsNormEps);
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal(RopeStyle.Interleaved, c.RopeStyle);
        Assert.False(c.AttentionBias);
        Assert.False(c.QkNorm);
        Assert.Equal(model.Weights.TryGet("output.weight") is null, c.TiedEmbeddings);
        Assert.Null(model.HfDirectory);
        Assert.Equal("llama", model.Metadata["tokenizer.ggml.model"]);
        Assert.Equal([512L, 64L], model.Weights.Get("token_embd.weight").Shape);
        Assert.Equal([32L, 64L], model.Weights.Get("blk.2.attn_k.weight").Shape);
        Assert.Equal([64L, 172L], model.Weights.Get("blk.4.ffn_down.weight").Shape);
        // RMSNorm weights of a trained model are positive-ish and not all identical.
        var norm = new ReadOnlySpan<float>(model.Weights.Get("blk.0.attn_norm.weight").Data, 64).ToArray();
        Assert.All(norm, v => Assert.True(float.IsFinite(v)));
        Assert.True(norm.Distinct().Count() > 1);
    }

    [Fact]
    public void Open_MissingPath_ThrowsNamingPath()
    {
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open("/nonexistent/model.gguf"));
        Assert.Contains("/nonexistent/model.gguf", ex.Message);
    }

    [Fact]
    public void Open_DirectoryWithoutConfig_ThrowsClearError()
    {
        using var dir = TestModels.CreateTempDirectory();
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("config.json", ex.Message);
        Assert.Contains(dir.Path, ex.Message);
    }

    [Fact]
    public void Open_WrittenGguf_ReportsBiasQkNormAndTied()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "tiny-qwen3.gguf");
        new TinyModel(tied: true, qkNorm: true).ToGguf("qwen3").Write(path);
        using var model = ModelFiles.Open(path);
        Assert.Equal("tiny-qwen3", model.Name);
        Assert.Equal(RopeStyle.Neox, model.Config.RopeStyle);
        Assert.True(model.Config.QkNorm);
        Assert.True(model.Config.TiedEmbeddings);
        Assert.False(model.Config.AttentionBias);
        Assert.Equal(TinyModel.HeadDim, model.Config.HeadDim);
        Assert.Equal(1e-6f, model.Config.RmsNormEps);
        Assert.Equal(128, model.Config.ContextLength);

        var biasPath = Path.Combine(dir.Path, "tiny-qwen2.gguf");
        new TinyModel(bias: true).ToGguf("qwen2").Write(biasPath);
        using var qwen2 = ModelFiles.Open(biasPath);
        Assert.True(qwen2.Config.AttentionBias);
        Assert.False(qwen2.Config.TiedEmbeddings);
    }
}
