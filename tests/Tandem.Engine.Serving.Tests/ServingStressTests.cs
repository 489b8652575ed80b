using Tandem.Abstractions;
using Tandem.Engine.Models;
using static Tandem.Engine.Serving.Tests.Engines;

namespace Tandem.Engine.Serving.Tests;

/// <summary>Random traffic under block pressure: arrivals, shared prefixes, cancellations, preemption, all at once.</summary>
public class ServingStressTests(SmallModelFixture fixture) : IClassFixture<SmallModelFixture>
{
    private readonly LoadedModel _model = fixture.Model;

    [Theory]
    [InlineData(1, 16, 3)]
    [InlineData(2, 8, 24)]
    [InlineData(3, 4, 64)]
    public async Task RandomTraffic_EveryUncancelledRequestMatchesItsReference_AndTheEngineEndsIdle(int seed, int blockSize, int budget)
    {
        var rng = new Random(seed);
        var options = new ServingOptions { NumKvBlocks = 96 / blockSize * 4, BlockSize = blockSize, MaxNumBatchedTokens = budget, MaxNumSeqs = 6 };
        using var engine = new ServingEngine(_model.Transformer, _model.Tokenizer.StopTokenIds, options);
        var mirror = new HashSet<ulong>();
        using var stop = new CancellationTokenSource();
        var events = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in engine.ReadKvEventsAsync(stop.Token))
                {
                    lock (mirror)
                    {
                        Apply(mirror, e);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var shared = Enumerable.Range(0, 3).Select(i => Prompt(20, 100 + i)).ToArray();
        var notSubmitted = 0;
        var jobs = new List<(int[] Prompt, int Max, Task<List<TokenOutput>> Run, bool Cancelled)>();
        for (var i = 0; i < 24; i++)
        {
            var prompt = rng.Next(2) == 0 ? [.. shared[rng.Next(3)], .. Prompt(rng.Next(1, 15), i)] : Prompt(rng.Next(1, 40), 200 + i);
            var max = rng.Next(1, 20);
            var cancel = rng.Next(5) == 0;
            var ct = cancel ? new CancellationTokenSource(TimeSpan.FromMilliseconds(rng.Next(1, 30))).Token : CancellationToken.None;
            Task<List<TokenOutput>> run;
            try
            {
                run = Collect(engine.SubmitAsync(Greedy(prompt, max), ct));
            }
            catch (OperationCanceledException) when (cancel)
            {
                run = Task.FromCanceled<List<TokenOutput>>(ct); // cancelled before submission: the engine never saw it
                notSubmitted++;
            }
            jobs.Add((prompt, max, run, cancel));
            if (rng.Next(3) == 0)
            {
                await Task.Delay(rng.Next(1, 10), TestContext.Current.CancellationToken);
            }
        }

        var finished = new List<(int[] Prompt, int Max, List<TokenOutput> Outputs)>();
        foreach (var (prompt, max, run, cancelled) in jobs)
        {
            try
            {
                finished.Add((prompt, max, await run));
            }
            catch (OperationCanceledException) when (cancelled)
            {
            }
        }
        var stats = await Idle(engine);
        Assert.Equal(jobs.Count, stats.RequestsFinished + stats.RequestsCancelled + notSubmitted);
        Assert.Equal(finished.Count, stats.RequestsFinished);
        Assert.True(stats.Preemptions > 0 || stats.PrefixHitTokens > 0);
        // References only now: the engine's loop and the reference generator share one (single-threaded) model.
        foreach (var (prompt, max, outputs) in finished)
        {
            Assert.Equal(Reference(_model, prompt, max), Ids(outputs));
        }

        // The event stream mirrors the cache exactly once everything settled.
        var snapshot = engine.KvSnapshot();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            lock (mirror)
            {
                if (mirror.SetEquals(snapshot.Blocks.Select(b => b.BlockHash)))
                {
                    break;
                }
            }
            Assert.True(DateTime.UtcNow < deadline, "the KV event mirror never matched the snapshot");
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        await stop.CancelAsync();
        await events;
    }

    private static void Apply(HashSet<ulong> mirror, KvEvent e)
    {
        switch (e)
        {
            case KvBlocksStored s:
                mirror.UnionWith(s.Blocks.Select(b => b.BlockHash));
                break;
            case KvBlocksRemoved r:
                mirror.ExceptWith(r.BlockHashes);
                break;
            case KvCacheCleared:
                mirror.Clear();
                break;
        }
    }
}
