using Tandem.Engine.Models;
using static Tandem.Engine.Serving.Tests.Engines;

namespace Tandem.Engine.Serving.Tests;

/// <summary>The serving paths on the real stories260K model: every way of running a sequence gives the reference's greedy tokens.</summary>
public class Stories260KServingTests
{
    private static readonly string[] Texts =
    [
        "Once upon a time",
        "Lily wanted to play with her ball in the park, but it was raining.",
        "The little dog ran to the big tree and",
        "One day, a boy named Tim found a shiny red box under his bed. He opened it and saw",
        "Sara and Ben were friends.",
        "The sun was hot. The cat sat",
        "Mom said, \"We have to go to the store now. Put on your shoes and your hat, please.\"",
        "A bird",
    ];

    [Fact]
    public async Task EveryServingPath_GivesTheReferenceGreedyTokens()
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, threads: 2);
        var prompts = Texts.Select(t => model.Tokenizer.Encode(t, addBos: true).ToArray()).ToArray();
        var expected = prompts.Select(p => Reference(model, p, 40)).ToArray();

        // Batch of 8, chunked prefill with a small budget, under block pressure (preemption).
        using (var engine = new ServingEngine(model.Transformer, model.Tokenizer.StopTokenIds,
            new ServingOptions { NumKvBlocks = 12, BlockSize = 8, MaxNumBatchedTokens = 7, Watermark = 0 }))
        {
            var results = await Task.WhenAll(prompts.Select(p => Collect(engine.SubmitAsync(Greedy(p, 40)))));
            for (var i = 0; i < prompts.Length; i++)
            {
                Assert.Equal(expected[i], Ids(results[i]));
            }
            var stats = await Idle(engine);
            Assert.True(stats.Preemptions > 0);

            // Prefix-cache hits for a repeated prompt (the first run may have been evicted under pressure).
            await Collect(engine.SubmitAsync(Greedy(prompts[3], 40)));
            var again = await Collect(engine.SubmitAsync(Greedy(prompts[3], 40)));
            Assert.True(again[0].CachedPromptTokens >= 8);
            Assert.Equal(expected[3], Ids(again));
        }

        // Prefill on one engine, KV exported and imported into another, decode there.
        using var decodeModel = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        using var prefill = new ServingEngine(model.Transformer, model.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 64 });
        using var decode = new ServingEngine(decodeModel.Transformer, decodeModel.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 64 });
        for (var i = 0; i < prompts.Length; i++)
        {
            var first = await prefill.PrefillAsync(Greedy(prompts[i], 40), TestContext.Current.CancellationToken);
            using var source = first.Kv!;
            var target = decode.TryReserveKv(prompts[i])!;
            var count = target.Blocks.Count - target.CachedBlocks;
            var keys = new float[count * decode.FloatsPerBlockLayer];
            var values = new float[keys.Length];
            for (var layer = 0; layer < model.Config.NumLayers; layer++)
            {
                prefill.ExportKv(source, layer, target.CachedBlocks, count, keys, values);
                decode.ImportKv(target, layer, target.CachedBlocks, count, keys, values);
            }
            var outputs = await Collect(decode.SubmitWithKv(Greedy(prompts[i], 40), target, first.FirstToken.TokenId, first.FirstToken.Logprob));
            Assert.Equal(expected[i], Ids(outputs));
        }
        Assert.Equal(0, (await Idle(decode)).PromptTokensComputed);
    }
}
