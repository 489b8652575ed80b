using Tandem.Abstractions;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;

namespace Tandem.Engine.Serving.Tests;

/// <summary>A random-weight `small` preset model (256 wide, 4 layers, vocabulary 512), written once and loaded for a test class.</summary>
public sealed class SmallModelFixture : IDisposable
{
    private readonly TestModels.TempDirectory _dir = TestModels.CreateTempDirectory();

    public SmallModelFixture()
    {
        var path = ModelInitializer.Write(Path.Combine(_dir.Path, "small.gguf"), new ModelInitOptions { Preset = ModelPresets.Small, Seed = 3 });
        Model = LoadedModel.Load(path, threads: 2);
    }

    public LoadedModel Model { get; }

    public void Dispose()
    {
        Model.Dispose();
        _dir.Dispose();
    }
}

internal static class Engines
{
    /// <summary>Prompt ids of varied lengths from a seeded generator, avoiding the model's special tokens.</summary>
    public static int[] Prompt(int length, int seed, int vocab = 512) =>
        Enumerable.Range(0, length).Select(i => 3 + ((seed * 7919) + (i * 104729) + (i * i * 31)) % (vocab - 3)).ToArray();

    public static GenerateRequest Greedy(int[] prompt, int maxTokens, string? id = null) => new()
    {
        RequestId = id ?? Guid.NewGuid().ToString("N"),
        PromptTokens = prompt,
        MaxTokens = maxTokens,
        IgnoreEos = true,
    };

    /// <summary>The single-sequence reference: <see cref="TextGenerator"/> with greedy sampling, whole-prompt prefill.</summary>
    public static int[] Reference(LoadedModel model, int[] prompt, int maxTokens) =>
        [.. new TextGenerator(model.Transformer, model.Tokenizer).Generate(prompt, new GenerationOptions { MaxTokens = maxTokens, IgnoreEos = true }).OutputTokens];

    public static async Task<List<TokenOutput>> Collect(IAsyncEnumerable<TokenOutput> stream)
    {
        var list = new List<TokenOutput>();
        await foreach (var t in stream)
        {
            list.Add(t);
        }
        return list;
    }

    public static int[] Ids(List<TokenOutput> outputs) => [.. outputs.Select(o => o.TokenId)];

    /// <summary>Waits until the engine has no running or waiting sequence and no block in use (the loop frees asynchronously).</summary>
    public static async Task<EngineStats> Idle(ServingEngine engine)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var s = engine.GetStats();
            if (s.Running == 0 && s.Waiting == 0 && s.KvBlocksUsed == 0)
            {
                return s;
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"engine not idle: {s}");
            }
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }
}
