using System.Security.Cryptography;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Inference;

public class ModelInitializerTests
{
    [Fact]
    public void Write_GgufAndSafetensorsOfOneSeed_GenerateIdenticalGreedyTokens()
    {
        using var dir = TestModels.CreateTempDirectory();
        var gguf = ModelInitializer.Write(Path.Combine(dir.Path, "m.gguf"), new ModelInitOptions { Seed = 5 });
        var hf = ModelInitializer.Write(Path.Combine(dir.Path, "m-hf"), new ModelInitOptions { Seed = 5, Format = "safetensors" });
        using var a = LoadedModel.Load(gguf, threads: 1);
        using var b = LoadedModel.Load(hf, threads: 1);
        Assert.Equal(RopeStyle.Interleaved, a.Config.RopeStyle);
        Assert.Equal(RopeStyle.Neox, b.Config.RopeStyle);

        var prompt = a.Tokenizer.Encode("Once upon a time", addBos: true);
        Assert.Equal(prompt, b.Tokenizer.Encode("Once upon a time", addBos: true));
        var options = new GenerationOptions { MaxTokens = 24, IgnoreEos = true };
        var ra = new TextGenerator(a.Transformer, a.Tokenizer).Generate(prompt, options, cancellationToken: TestContext.Current.CancellationToken);
        var rb = new TextGenerator(b.Transformer, b.Tokenizer).Generate(prompt, options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(ra.OutputTokens, rb.OutputTokens);
        Assert.Equal(ra.Text, rb.Text);
        // A random model still has to produce varied tokens, or the comparison above proves little.
        Assert.True(ra.OutputTokens.Distinct().Count() > 3);
    }

    [Fact]
    public void Write_SameSeed_SameBytes_DifferentSeed_DifferentBytes()
    {
        using var dir = TestModels.CreateTempDirectory();
        string Hash(string name, ulong seed)
        {
            var path = ModelInitializer.Write(Path.Combine(dir.Path, name), new ModelInitOptions { Seed = seed });
            return Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
        }
        Assert.Equal(Hash("a.gguf", 1), Hash("b.gguf", 1));
        Assert.NotEqual(Hash("a.gguf", 1), Hash("c.gguf", 2));
    }

    [Theory]
    [InlineData(TensorType.F16)]
    [InlineData(TensorType.BF16)]
    [InlineData(TensorType.Q8_0)]
    public void Write_WeightType_StoresMatricesInThatType(TensorType type)
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = ModelInitializer.Write(Path.Combine(dir.Path, "m.gguf"), new ModelInitOptions { WeightType = type, Preset = ModelPresets.Small });
        using var model = LoadedModel.Load(path, threads: 1);
        Assert.Equal(type, model.Artifact.Weights.Get("blk.0.attn_q.weight").Type);
        Assert.Equal(TensorType.F32, model.Artifact.Weights.Get("blk.0.attn_norm.weight").Type);
        Assert.Equal(256, model.Config.HiddenSize);
    }

    [Fact]
    public void Write_VocabularyFromStories260K_UsesItsTokenizer()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = ModelInitializer.Write(Path.Combine(dir.Path, "m.gguf"), new ModelInitOptions { VocabularyFrom = TestModels.Stories260K });
        using var model = LoadedModel.Load(path, threads: 1);
        using var stories = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        const string text = "Lily and Ben played in the park.";
        Assert.Equal(stories.Tokenizer.Encode(text, addBos: true), model.Tokenizer.Encode(text, addBos: true));
    }

    [Fact]
    public void Write_Q8_0Safetensors_IsRefused()
    {
        using var dir = TestModels.CreateTempDirectory();
        var e = Assert.Throws<ArgumentException>(() => ModelInitializer.Write(Path.Combine(dir.Path, "m"), new ModelInitOptions { Format = "safetensors", WeightType = TensorType.Q8_0 }));
        Assert.Contains("Q8_0", e.Message);
    }
}
