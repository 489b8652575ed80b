using Tandem.Abstractions;
using Tandem.Engine.Models;
using static Tandem.Engine.Serving.Tests.Engines;

namespace Tandem.Engine.Serving.Tests;

/// <summary>The serving engine against the single-sequence reference on a random `small` model.</summary>
public class ServingEngineTests(SmallModelFixture fixture) : IClassFixture<SmallModelFixture>
{
    private readonly LoadedModel _model = fixture.Model;

    private ServingEngine NewEngine(ServingOptions? options = null) =>
        new(_model.Transformer, _model.Tokenizer.StopTokenIds, options ?? new ServingOptions { NumKvBlocks = 256 });

    [Fact]
    public async Task Batch_OfEightDifferentLengths_MatchesEachSequenceAlone()
    {
        var prompts = Enumerable.Range(0, 8).Select(i => Prompt(3 + (i * 13), i)).ToArray();
        var lengths = prompts.Select((_, i) => 5 + (i * 3)).ToArray();
        var expected = prompts.Select((p, i) => Reference(_model, p, lengths[i])).ToArray();

        using var engine = NewEngine();
        var results = await Task.WhenAll(prompts.Select((p, i) => Collect(engine.SubmitAsync(Greedy(p, lengths[i])))));
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(expected[i], Ids(results[i]));
            Assert.Equal(FinishReason.Length, results[i][^1].Finish);
            Assert.All(results[i].SkipLast(1), t => Assert.Null(t.Finish));
            Assert.Equal(Enumerable.Range(0, lengths[i]), results[i].Select(t => t.Index));
        }
        var stats = await Idle(engine);
        Assert.Equal(8, stats.RequestsFinished);
        Assert.True(stats.Steps < lengths.Sum(), $"{stats.Steps} steps: the sequences were not batched");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(16)]
    [InlineData(37)]
    public async Task ChunkedPrefill_AnyBudget_MatchesWholePromptPrefill(int budget)
    {
        var prompts = new[] { Prompt(70, 1), Prompt(41, 2), Prompt(9, 3) };
        var expected = prompts.Select(p => Reference(_model, p, 6)).ToArray();
        using var engine = NewEngine(new ServingOptions { NumKvBlocks = 64, MaxNumBatchedTokens = budget });
        var results = await Task.WhenAll(prompts.Select(p => Collect(engine.SubmitAsync(Greedy(p, 6)))));
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(expected[i], Ids(results[i]));
        }
    }

    [Fact]
    public async Task PrefixCacheHit_SkipsCachedBlocksAndGivesTheSameTokens()
    {
        var prompt = Prompt(50, 9);
        var expected = Reference(_model, prompt, 8);
        using var engine = NewEngine();
        var first = await Collect(engine.SubmitAsync(Greedy(prompt, 8)));
        var computedAfterFirst = engine.GetStats().PromptTokensComputed;
        var second = await Collect(engine.SubmitAsync(Greedy(prompt, 8)));

        Assert.Equal(expected, Ids(first));
        Assert.Equal(expected, Ids(second));
        Assert.Equal(0, first[0].CachedPromptTokens);
        Assert.Equal(48, second[0].CachedPromptTokens); // three full 16-token blocks
        var stats = await Idle(engine);
        Assert.Equal(2, stats.PromptTokensComputed - computedAfterFirst);
        Assert.Equal(48.0 / 100, stats.PrefixHitRate, 6);

        // A prompt sharing only the first block hits one block; a salted one hits nothing.
        var branch = prompt[..20].Concat(Prompt(30, 77)).ToArray();
        var third = await Collect(engine.SubmitAsync(Greedy(branch, 4)));
        Assert.Equal(16, third[0].CachedPromptTokens);
        Assert.Equal(Reference(_model, branch, 4), Ids(third));
        var salted = await Collect(engine.SubmitAsync(Greedy(prompt, 2) with { CacheSalt = "tenant" }));
        Assert.Equal(0, salted[0].CachedPromptTokens);
    }

    [Fact]
    public async Task WholePromptCached_StillComputesTheLastToken()
    {
        var prompt = Prompt(32, 4); // exactly two blocks
        using var engine = NewEngine();
        var a = await Collect(engine.SubmitAsync(Greedy(prompt, 3)));
        var b = await Collect(engine.SubmitAsync(Greedy(prompt, 3)));
        Assert.Equal(16, b[0].CachedPromptTokens);
        Assert.Equal(Ids(a), Ids(b));
    }

    [Fact]
    public async Task BlockPressure_PreemptsAndRecomputes_WithIdenticalOutputs()
    {
        // 12 blocks of 16 tokens hold about three of these sequences (40 + 24 tokens each) at a time.
        var prompts = Enumerable.Range(0, 8).Select(i => Prompt(40, 20 + i)).ToArray();
        var expected = prompts.Select(p => Reference(_model, p, 24)).ToArray();
        using var engine = NewEngine(new ServingOptions { NumKvBlocks = 12, Watermark = 0 });
        var results = await Task.WhenAll(prompts.Select(p => Collect(engine.SubmitAsync(Greedy(p, 24)))));
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(expected[i], Ids(results[i]));
        }
        var stats = await Idle(engine);
        Assert.True(stats.Preemptions > 0, "the test did not create block pressure");
        Assert.Equal(8, stats.RequestsFinished);
    }

    [Fact]
    public async Task ManyRequestsFewBlocks_EachFinishesOrIsRejectedCleanly()
    {
        using var engine = NewEngine(new ServingOptions { NumKvBlocks = 8, MaxQueueLength = 10, MaxNumSeqs = 4, Watermark = 0 });
        var tasks = new List<Task<List<TokenOutput>>>();
        var rejected = 0;
        for (var i = 0; i < 40; i++)
        {
            try
            {
                tasks.Add(Collect(engine.SubmitAsync(Greedy(Prompt(10 + (i % 30), i), 8 + (i % 5)))));
            }
            catch (EngineOverloadedException)
            {
                rejected++;
            }
        }
        var results = await Task.WhenAll(tasks);
        Assert.True(rejected > 0, "the queue bound was never reached");
        Assert.Equal(40, results.Length + rejected);
        Assert.All(results, r => Assert.Equal(FinishReason.Length, r[^1].Finish));
        var stats = await Idle(engine);
        Assert.Equal(rejected, stats.RequestsRejected);
        Assert.Equal(results.Length, stats.RequestsFinished);
    }

    [Fact]
    public async Task Cancellation_FreesBlocksAndLeavesOthersUntouched()
    {
        var prompt = Prompt(30, 5);
        var expected = Reference(_model, prompt, 12);
        using var engine = NewEngine();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var victim = engine.SubmitAsync(Greedy(Prompt(40, 6), 100_000 / 1000), cts.Token);
        var survivor = Collect(engine.SubmitAsync(Greedy(prompt, 12)));
        var seen = 0;
        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in victim)
            {
                if (++seen == 3)
                {
                    await cts.CancelAsync();
                }
            }
        });
        Assert.True(seen >= 3);
        Assert.Equal(expected, Ids(await survivor));
        var stats = await Idle(engine);
        Assert.Equal(1, stats.RequestsCancelled);
        Assert.NotNull(ex);
    }

    [Fact]
    public async Task AbandonedEnumeration_CancelsTheRequest()
    {
        using var engine = NewEngine();
        await foreach (var t in engine.SubmitAsync(Greedy(Prompt(20, 8), 90)))
        {
            if (t.Index == 2)
            {
                break;
            }
        }
        var stats = await Idle(engine);
        Assert.Equal(1, stats.RequestsCancelled);
    }

    [Fact]
    public async Task ExportedThenImportedKv_ContinuesDecodingWithoutPrefill()
    {
        var prompt = Prompt(45, 11);
        var expected = Reference(_model, prompt, 10);
        using var second = LoadedModel.Load(_model.Artifact.Path, threads: 1);
        using var prefill = NewEngine();
        using var decode = new ServingEngine(second.Transformer, second.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 64 });

        // min_tokens above the prefill's one token (as load generators send) must not be refused by the prefill.
        var request = Greedy(prompt, 10) with { MinTokens = 10 };
        var result = await prefill.PrefillAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(expected[0], result.FirstToken.TokenId);
        using var source = Assert.IsType<KvBlockLease>(result.Kv);
        Assert.Equal(45, source.Tokens);
        Assert.Equal(3, source.Blocks.Count);

        var target = decode.TryReserveKv(prompt);
        Assert.NotNull(target);
        Assert.Equal(0, target.CachedBlocks);
        var n = source.Blocks.Count * prefill.FloatsPerBlockLayer;
        var keys = new float[n];
        var values = new float[n];
        for (var layer = 0; layer < _model.Config.NumLayers; layer++)
        {
            prefill.ExportKv(source, layer, 0, source.Blocks.Count, keys, values);
            decode.ImportKv(target, layer, 0, target.Blocks.Count, keys, values);
        }
        source.Dispose();

        var outputs = await Collect(decode.SubmitWithKv(request, target, result.FirstToken.TokenId, result.FirstToken.Logprob));
        Assert.Equal(expected, Ids(outputs));
        Assert.Equal(45, outputs[0].CachedPromptTokens);
        var stats = await Idle(decode);
        Assert.Equal(0, stats.PromptTokensComputed); // no prefill compute on the decode side
        await Idle(prefill);

        // The imported blocks joined the decode side's prefix cache: the same prompt now hits two full blocks.
        var again = await Collect(decode.SubmitAsync(Greedy(prompt, 10)));
        Assert.Equal(32, again[0].CachedPromptTokens);
        Assert.Equal(expected, Ids(again));
    }

    [Fact]
    public async Task KvTransfer_RefusesMisuse()
    {
        using var engine = NewEngine();
        var prompt = Prompt(40, 12);
        await Collect(engine.SubmitAsync(Greedy(prompt, 2)));
        var lease = engine.TryReserveKv(prompt)!;
        Assert.Equal(2, lease.CachedBlocks); // blocks 0 and 1 come from the prefix cache
        var buffer = new float[engine.FloatsPerBlockLayer];
        Assert.Throws<InvalidOperationException>(() => engine.ImportKv(lease, 0, 0, 1, buffer, buffer));
        Assert.Throws<ArgumentException>(() => engine.ImportKv(lease, 0, 2, 1, buffer, new float[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.ExportKv(lease, 0, 2, 2, buffer, buffer));
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.ExportKv(lease, 99, 0, 1, buffer, buffer));
        engine.ImportKv(lease, 0, 2, 1, buffer, buffer);
        lease.Dispose();
        Assert.Throws<InvalidOperationException>(() => engine.ExportKv(lease, 0, 0, 1, buffer, buffer));
        Assert.Throws<InvalidOperationException>(() => engine.SubmitWithKv(Greedy(prompt, 2), lease, 5, 0f));
        await Idle(engine);
    }

    [Fact]
    public async Task RetainedKv_IsReleasedAfterItsTimeout()
    {
        using var engine = NewEngine(new ServingOptions { NumKvBlocks = 64, RetainedKvTimeout = TimeSpan.FromMilliseconds(200) });
        var result = await engine.PrefillAsync(Greedy(Prompt(20, 13), 5), TestContext.Current.CancellationToken);
        Assert.True(result.Kv!.IsHeld);
        Assert.Equal(2, engine.GetStats().KvBlocksUsed);
        await Idle(engine);
        Assert.False(result.Kv.IsHeld);
    }

    [Fact]
    public async Task Sampling_SeededRequestsRepeatInAndOutOfBatches_AndLogprobsAreGiven()
    {
        var request = Greedy(Prompt(25, 14), 12) with { Sampling = new SamplingParams { Temperature = 0.9f, TopK = 50, Seed = 42 }, Logprobs = true };
        using var engine = NewEngine();
        var alone = await Collect(engine.SubmitAsync(request));
        var batch = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Collect(engine.SubmitAsync(i == 2 ? request : Greedy(Prompt(9 + i, i), 12)))));
        Assert.Equal(Ids(alone), Ids(batch[2]));
        Assert.All(alone, t => Assert.True(t.Logprob <= 0 && !float.IsNaN(t.Logprob)));
        Assert.All(batch[0], t => Assert.True(float.IsNaN(t.Logprob)));
    }

    [Fact]
    public async Task StopTokensAndMinTokens()
    {
        var prompt = Prompt(15, 15);
        var reference = Reference(_model, prompt, 20);
        using var engine = NewEngine();
        var stopAt = reference[5];
        var firstIndex = Array.IndexOf(reference, stopAt);
        var stopped = await Collect(engine.SubmitAsync(Greedy(prompt, 20) with { StopTokenIds = [stopAt] }));
        Assert.Equal(reference[..(firstIndex + 1)], Ids(stopped));
        Assert.Equal(FinishReason.Stop, stopped[^1].Finish);

        var min = await Collect(engine.SubmitAsync(Greedy(prompt, 20) with { StopTokenIds = [stopAt], MinTokens = firstIndex + 1 }));
        Assert.True(min.Count > firstIndex + 1);
        Assert.DoesNotContain(stopAt, Ids(min)[..(firstIndex + 1)]);
    }

    [Fact]
    public void InvalidRequests_AreRejectedWithClearErrors()
    {
        using var engine = NewEngine(new ServingOptions { NumKvBlocks = 8 });
        var context = _model.Config.ContextLength;
        Assert.Contains("no tokens", Assert.Throws<InvalidRequestException>(() => engine.SubmitAsync(Greedy([], 5))).Message);
        Assert.Contains("context length", Assert.Throws<InvalidRequestException>(() => engine.SubmitAsync(Greedy(new int[context], 5))).Message);
        Assert.Contains("vocabulary", Assert.Throws<InvalidRequestException>(() => engine.SubmitAsync(Greedy([1, 99999], 5))).Message);
        Assert.Equal("max_tokens", Assert.Throws<InvalidRequestException>(() => engine.SubmitAsync(Greedy([1, 2], 0))).ParamName);
        Assert.Contains("KV pool", Assert.Throws<InvalidRequestException>(() => engine.SubmitAsync(Greedy([1, 2], 200))).Message);
        Assert.Contains("temperature", Assert.Throws<InvalidRequestException>(() =>
            engine.SubmitAsync(Greedy([1, 2], 5) with { Sampling = new SamplingParams { Temperature = -1 } })).Message);
        Assert.Equal(0, engine.GetStats().Waiting);
    }

    [Fact]
    public async Task Dispose_FailsUnfinishedRequestsAndRefusesNewOnes()
    {
        var engine = NewEngine();
        var stream = Collect(engine.SubmitAsync(Greedy(Prompt(20, 16), 200)));
        await Task.Delay(50, TestContext.Current.CancellationToken);
        engine.Dispose();
        await Assert.ThrowsAsync<EngineUnavailableException>(() => stream);
        Assert.Throws<EngineUnavailableException>(() => engine.SubmitAsync(Greedy([1, 2], 2)));
        engine.Dispose();
    }

    [Fact]
    public async Task SteadyStateDecodeSteps_AllocateNothingOnTheEngineThread()
    {
        using var engine = NewEngine();
        var streams = Enumerable.Range(0, 4).Select(i => engine.SubmitAsync(Greedy(Prompt(12 + i, 30 + i), 150))).ToArray();
        var samples = new List<long>();
        var consumers = streams.Select((s, i) => Task.Run(async () =>
        {
            await foreach (var t in s)
            {
                if (i == 0 && t.Index is > 40 and < 140)
                {
                    lock (samples)
                    {
                        samples.Add(engine.LastStepAllocatedBytes);
                    }
                }
            }
        })).ToArray();
        await Task.WhenAll(consumers);
        Assert.True(samples.Count > 50);
        // The forward pass, scheduling and sampling allocate nothing; what remains is waking a consumer that waits on its
        // stream (a thread-pool work item) and the occasional growth of a stream's buffer, a few hundred bytes at most.
        var median = samples.Order().ElementAt(samples.Count / 2);
        Assert.True(median == 0, $"median step allocation {median} bytes");
        Assert.True(samples.Average() < 512, $"mean step allocation {samples.Average():F0} bytes: {string.Join(',', samples.Where(b => b > 0))}");
    }
}
