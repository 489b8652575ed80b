using Tandem.Abstractions;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;

namespace Tandem.Engine.Tests.Inference;

/// <summary>The real trained model: the engine must reproduce llama2.c's greedy story and agree with the naive reference.</summary>
public class Stories260KTests
{
    private const string FirstSentence = "Once upon a time, there was a little girl named Lily.";

    [Fact]
    public void Generate_GreedyFromBos_TellsLlama2cStoryAndMatchesNaiveReferenceFor200Tokens()
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, "optimized", threads: 2);
        var tokenizer = model.Tokenizer;
        var generator = new TextGenerator(model.Transformer, tokenizer);
        var result = generator.Generate([tokenizer.BosId], new GenerationOptions { MaxTokens = 200, IgnoreEos = true }, cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(200, result.OutputTokens.Count);
        Assert.StartsWith(FirstSentence, result.Text, StringComparison.Ordinal);

        // Independent reference: double precision, contiguous cache, greedy argmax.
        var naive = new NaiveLlama(model.Config, model.Artifact.Weights);
        var logits = naive.Step(tokenizer.BosId);
        var expected = new List<int>();
        for (var i = 0; i < 200; i++)
        {
            var next = Array.IndexOf(logits, logits.Max());
            expected.Add(next);
            logits = naive.Step(next);
        }
        Assert.Equal(expected, result.OutputTokens);
        Assert.Equal(tokenizer.Decode(expected.ToArray()), result.Text);
    }

    [Theory]
    [InlineData("optimized", 1)]
    [InlineData("optimized", 2)]
    [InlineData("reference", 1)]
    public void Forward_Stories260K_LogitsAgreeWithNaiveReference(string kernels, int threads)
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, kernels, threads);
        var tokens = model.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play", addBos: true);
        var naive = new NaiveLlama(model.Config, model.Artifact.Weights);
        using var cache = model.Transformer.CreateCache(numBlocks: 8);
        var seq = new KvSequence();
        Assert.True(seq.TryReserve(cache, tokens.Length));
        var logits = new float[model.Config.VocabSize];
        foreach (var t in tokens)
        {
            model.Transformer.Forward(cache, [new ForwardChunk(seq, new[] { t })], logits);
            TransformerTests.AssertClose(naive.Step(t), logits, $"{kernels}/{threads} at position {seq.Length - 1}");
        }
    }

    [Fact]
    public void Generate_SeededSampling_IsReproducibleAndSeedDependent()
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        var generator = new TextGenerator(model.Transformer, model.Tokenizer);
        GenerationOptions Options(ulong seed) => new() { MaxTokens = 40, IgnoreEos = true, Sampling = new() { Temperature = 1f, TopP = 0.95f, Seed = seed } };
        var prompt = model.Tokenizer.Encode("Once upon a time", addBos: true);
        var a = generator.Generate(prompt, Options(5), cancellationToken: TestContext.Current.CancellationToken);
        var b = generator.Generate(prompt, Options(5), cancellationToken: TestContext.Current.CancellationToken);
        var c = generator.Generate(prompt, Options(6), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(a.OutputTokens, b.OutputTokens);
        Assert.NotEqual(a.OutputTokens, c.OutputTokens);
    }

    [Fact]
    public void Generate_StopsAtEosOrMaxTokens_WithFinishReason()
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        var generator = new TextGenerator(model.Transformer, model.Tokenizer);
        var bos = new[] { model.Tokenizer.BosId };

        var limited = generator.Generate(bos, new GenerationOptions { MaxTokens = 7 }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(7, limited.OutputTokens.Count);
        Assert.Equal(FinishReason.Length, limited.FinishReason);

        // The greedy story's 3rd token, given as a stop id, ends generation right there.
        var stopId = limited.OutputTokens[2];
        var stopped = generator.Generate(bos, new GenerationOptions { MaxTokens = 50, StopTokenIds = [stopId] }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(FinishReason.Stop, stopped.FinishReason);
        Assert.Equal(limited.OutputTokens.Take(3), stopped.OutputTokens);
    }
}
