using Tandem.Engine.Serving;
using Tandem.Hosting;
using Tandem.Transfer;
using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>
/// The invariant of the whole system (blueprint §1): greedy output is token-identical aggregated, decode-first and
/// prefill-first, and no failure of the prefill side loses a request.
/// </summary>
public class DisaggregationTests
{
    private static readonly string[] Prompts =
    [
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day",
        "Tom and his dog went to the big forest to look for a treasure. They walked and walked until",
        "Hi",
        "The sun was shining and the birds were singing. Sara wanted to bake a cake for her mom, so she",
    ];

    private static Task<EmbeddedServer> Start(ServeMode mode, DisaggregationStrategy strategy = DisaggregationStrategy.DecodeFirst, int prefillWorkers = 1, int decodeWorkers = 1, DisaggregationOptions? disagg = null, bool prefixCaching = true) =>
        Stories260KServer.StartAsync(new EmbeddedServerOptions
        {
            ModelPath = TestModels.Stories260K,
            Threads = 1,
            Mode = mode,
            PrefillWorkers = prefillWorkers,
            DecodeWorkers = decodeWorkers,
            Serving = new ServingOptions { NumKvBlocks = 256, EnablePrefixCaching = prefixCaching },
            Disaggregation = disagg ?? new DisaggregationOptions { MaxLocalPrefillLength = 8 },
            Frontend = new FrontendOptions { Port = 0, Strategy = strategy },
        });

    private static async Task<List<string>> Outputs(EmbeddedServer server, bool stream = false)
    {
        using var http = Stories260KServer.Client(server);
        var texts = new List<string>();
        foreach (var prompt in Prompts)
        {
            var json = $$"""{"model":"stories260K","prompt":"{{prompt}}","max_tokens":48,"temperature":0{{(stream ? ",\"stream\":true" : "")}}}""";
            if (stream)
            {
                var (status, events, done) = await HttpJson.StreamAsync(http, "v1/completions", json);
                Assert.Equal(200, status);
                Assert.True(done);
                texts.Add(string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString())));
            }
            else
            {
                var (status, body) = await HttpJson.PostAsync(http, "v1/completions", json);
                Assert.Equal(200, status);
                texts.Add(body.GetProperty("choices")[0].GetProperty("text").GetString()!);
            }
        }
        return texts;
    }

    private static async Task AssertNoLeaksAsync(EmbeddedServer server)
    {
        foreach (var w in server.Workers)
        {
            for (var i = 0; i < 100 && (w.Engine.GetStats().KvBlocksUsed > 0 || w.KvAccess.PublishedLeases > 0); i++)
            {
                await Task.Delay(20);
            }
            Assert.Equal(0, w.Engine.GetStats().KvBlocksUsed);
            Assert.Equal(0, w.KvAccess.PublishedLeases);
        }
    }

    private static EngineWorker Decode(EmbeddedServer server) => server.Workers.Single(w => w.Instance.Role == Tandem.Abstractions.WorkerRole.Decode);

    [Fact]
    public async Task Greedy_AggregatedDecodeFirstPrefillFirst_AreTokenIdentical()
    {
        List<string> aggregated;
        await using (var agg = await Start(ServeMode.Aggregated))
        {
            aggregated = await Outputs(agg);
        }
        var bytesBefore = KvTransferMetrics.TotalBytes;
        await using (var decodeFirst = await Start(ServeMode.Disaggregated))
        {
            Assert.Equal(aggregated, await Outputs(decodeFirst));
            Assert.Equal(aggregated, await Outputs(decodeFirst, stream: true));
            var stats = await Decode(decodeFirst).GetStatsAsync();
            // The three long prompts are prefilled remotely the first time; their repeats (streaming) hit the decode
            // worker's own prefix cache, which took in the imported blocks, and 'Hi' is below the threshold.
            Assert.Equal(3, stats.RemotePrefills);
            Assert.Equal(5, stats.LocalPrefills);
            Assert.Empty(stats.PrefillFallbacks);
            await AssertNoLeaksAsync(decodeFirst);
        }
        Assert.True(KvTransferMetrics.TotalBytes > bytesBefore);
        await using (var prefillFirst = await Start(ServeMode.Disaggregated, DisaggregationStrategy.PrefillFirst))
        {
            Assert.Equal(aggregated, await Outputs(prefillFirst));
            Assert.Equal(aggregated, await Outputs(prefillFirst, stream: true));
            var stats = await Decode(prefillFirst).GetStatsAsync();
            Assert.Equal(8, stats.RemotePrefills);
            await AssertNoLeaksAsync(prefillFirst);
        }
    }

    [Fact]
    public async Task Logprobs_OfTheFirstTokenComeFromThePrefillSide_SameAsAggregated()
    {
        var json = $$"""{"model":"stories260K","prompt":"{{Prompts[0]}}","max_tokens":6,"temperature":0,"logprobs":0}""";
        async Task<List<double>> LogprobsAsync(EmbeddedServer server)
        {
            using var http = Stories260KServer.Client(server);
            var (status, body) = await HttpJson.PostAsync(http, "v1/completions", json);
            Assert.True(status == 200, body.ToString());
            return [.. body.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().Select(e => e.GetDouble())];
        }
        List<double> aggregated;
        await using (var agg = await Start(ServeMode.Aggregated))
        {
            aggregated = await LogprobsAsync(agg);
        }
        foreach (var strategy in (DisaggregationStrategy[])[DisaggregationStrategy.DecodeFirst, DisaggregationStrategy.PrefillFirst])
        {
            await using var server = await Start(ServeMode.Disaggregated, strategy);
            var logprobs = await LogprobsAsync(server);
            Assert.Equal(1, (await Decode(server).GetStatsAsync()).RemotePrefills);
            Assert.Equal(aggregated.Count, logprobs.Count);
            for (var i = 0; i < aggregated.Count; i++)
            {
                Assert.Equal(aggregated[i], logprobs[i], 4);
            }
        }
    }

    [Fact]
    public async Task DecodeFirst_SecondRequestWithSamePrefix_HitsTheDecodeWorkersOwnCache()
    {
        await using var server = await Start(ServeMode.Disaggregated, disagg: new DisaggregationOptions { MaxLocalPrefillLength = 16 });
        var first = await Outputs(server);
        var before = await Decode(server).GetStatsAsync();
        Assert.Equal(first, await Outputs(server));
        var after = await Decode(server).GetStatsAsync();
        // Imported blocks entered the decode worker's prefix cache, so the repeats are mostly cached: prefilled here.
        Assert.Equal(before.RemotePrefills, after.RemotePrefills);
        Assert.True(after.PrefixHitTokens > before.PrefixHitTokens);
    }

    [Fact]
    public async Task NoPrefillWorker_DecodeWorkerPrefillsLocally_SameOutput()
    {
        List<string> aggregated;
        await using (var agg = await Start(ServeMode.Aggregated))
        {
            aggregated = await Outputs(agg);
        }
        await using var server = await Start(ServeMode.Disaggregated, prefillWorkers: 0);
        Assert.Equal(aggregated, await Outputs(server));
        var stats = await Decode(server).GetStatsAsync();
        Assert.Equal(0, stats.RemotePrefills);
        Assert.Equal(3, stats.PrefillFallbacks["no_prefill_worker"]);
        using var http = Stories260KServer.Client(server);
        Assert.Contains("tandem_worker_prefill_fallbacks_total{worker=\"decode-0\",model=\"stories260K\",reason=\"no_prefill_worker\"} 3", await http.GetStringAsync("metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrefillWorkerGone_RequestsFallBackAndSucceed()
    {
        // Without prefix caching every long prompt needs a remote prefill, also the second time.
        await using var server = await Start(ServeMode.Disaggregated, prefixCaching: false);
        var expected = await Outputs(server);
        Assert.Equal(3, (await Decode(server).GetStatsAsync()).RemotePrefills);
        // The prefill worker stops serving its queue but stays listed (as a crashed process would until its lease expires).
        await server.Workers.Single(w => w.Instance.Role == Tandem.Abstractions.WorkerRole.Prefill).DisposeAsync();
        Assert.Equal(expected, await Outputs(server));
        var stats = await Decode(server).GetStatsAsync();
        Assert.Equal(3, stats.PrefillFallbacks["no_prefill_worker"]);
        await AssertNoLeaksAsync(server);
    }

    [Fact]
    public async Task RemotePrefillTimeout_FallsBackLocally_AndTheLateKvNeverLands()
    {
        await using var server = await Start(ServeMode.Disaggregated, disagg: new DisaggregationOptions { MaxLocalPrefillLength = 8, RemotePrefillTimeout = TimeSpan.FromMilliseconds(1) });
        List<string> aggregated;
        await using (var agg = await Start(ServeMode.Aggregated))
        {
            aggregated = await Outputs(agg);
        }
        Assert.Equal(aggregated, await Outputs(server));
        var stats = await Decode(server).GetStatsAsync();
        Assert.True(stats.PrefillFallbacks.GetValueOrDefault("timeout") >= 1, string.Join(", ", stats.PrefillFallbacks));
        await AssertNoLeaksAsync(server);
    }

    [Fact]
    public async Task SlowPrefillWorker_RefusesWhatItCannotFinishInTime_DecodeWorkerPrefillsAtOnce()
    {
        List<string> aggregated;
        await using (var agg = await Start(ServeMode.Aggregated))
        {
            aggregated = await Outputs(agg);
        }
        // The decode worker waits at most 400 ms for a remote prefill.
        await using var server = await Start(ServeMode.Disaggregated, disagg: new DisaggregationOptions { MaxLocalPrefillLength = 8, RemotePrefillTimeout = TimeSpan.FromMilliseconds(400) });
        var prefill = server.Workers.Single(w => w.Instance.Role == Tandem.Abstractions.WorkerRole.Prefill);
        using var http = Stories260KServer.Client(server);
        // One remote prefill (taken: the worker is idle and its rate unknown) lets its engine measure itself. The prompt
        // shares no block with the test prompts, so their prefix-cache state is unchanged.
        var (status, body) = await HttpJson.PostAsync(http, "v1/completions", """{"model":"stories260K","prompt":"A big cat sat on a red mat and looked at the moon for a long time, while the wind blew and the leaves fell.","max_tokens":2,"temperature":0}""");
        Assert.True(status == 200, body.ToString());
        Assert.True(prefill.Backlog.SecondsPerToken > 0);
        var computed = (await prefill.GetStatsAsync()).PromptTokensComputed;
        var before = await Decode(server).GetStatsAsync();
        Assert.Equal(1, before.RemotePrefills);

        // Now a queue of a million prompt tokens is ahead (as if other decode workers had sent them): at any real rate
        // every long prompt is estimated past the 400 ms, and the prefill worker is not idle.
        using (prefill.Backlog.TryAdmit(1_000_000, null, out _))
        {
            Assert.Equal(aggregated, await Outputs(server));
            Assert.Equal(1_000_000, (await prefill.GetStatsAsync()).PrefillBacklogTokens);
        }
        var decode = await Decode(server).GetStatsAsync();
        // Refused before any work, so the fallback says why (not a timeout after 400 ms), and nothing was computed twice.
        Assert.Equal(1, decode.RemotePrefills);
        Assert.Equal(3, decode.PrefillFallbacks["prefill_busy"]);
        Assert.False(decode.PrefillFallbacks.ContainsKey("timeout"));
        var prefillStats = await prefill.GetStatsAsync();
        Assert.Equal(3, prefillStats.RemotePrefillsRefused);
        Assert.Equal(computed, prefillStats.PromptTokensComputed);
        Assert.Equal(0, prefillStats.PrefillBacklogTokens);
        var metrics = await http.GetStringAsync("metrics");
        Assert.Contains("tandem_worker_remote_prefills_refused_total{worker=\"prefill-0\",model=\"stories260K\"} 3", metrics, StringComparison.Ordinal);
        Assert.Contains("reason=\"prefill_busy\"} 3", metrics, StringComparison.Ordinal);
        await AssertNoLeaksAsync(server);
    }

    [Fact]
    public async Task PrefillFirst_ManyConcurrentRequests_AllCorrectNoLeaks()
    {
        await using var server = await Start(ServeMode.Disaggregated, DisaggregationStrategy.PrefillFirst, prefillWorkers: 2, decodeWorkers: 2);
        var expected = await Outputs(server);
        var runs = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Outputs(server)));
        Assert.All(runs, r => Assert.Equal(expected, r));
        await AssertNoLeaksAsync(server);
    }
}
