using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Tandem.Engine.Models;
using Tandem.Engine.Serving;
using Tandem.Hosting;
using Tandem.Transfer.Tests;

namespace Tandem.IntegrationTests;

/// <summary>Greedy output of one completion: its text, finish reason and number of generated tokens.</summary>
public sealed record GreedyOutput(string Text, string FinishReason, int CompletionTokens);

/// <summary>
/// The random-weight `small` preset model (4 layers, 256 wide, 16-token KV blocks) written once for the class, and
/// the greedy outputs of an aggregated in-process server for every prompt the class sends.
/// </summary>
public sealed class SmallPresetReference : IAsyncLifetime
{
    private readonly TestModels.TempDirectory _dir = TestModels.CreateTempDirectory();
    private readonly Dictionary<string, GreedyOutput> _expected = new(StringComparer.Ordinal);

    public string ModelPath { get; private set; } = "";

    public string ModelName { get; private set; } = "";

    public GreedyOutput Expected(int[] prompt) => _expected[string.Join(',', prompt)];

    public async ValueTask InitializeAsync()
    {
        ModelPath = ModelInitializer.Write(Path.Combine(_dir.Path, "small.gguf"), new ModelInitOptions { Preset = ModelPresets.Small, Seed = 5 });
        await using var server = await EmbeddedServer.StartAsync(new EmbeddedServerOptions
        {
            ModelPath = ModelPath,
            Threads = 1,
            Serving = new ServingOptions { NumKvBlocks = 256 },
            Frontend = new Tandem.Frontend.FrontendOptions { Port = 0 },
        });
        ModelName = server.ModelName;
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(60) };
        foreach (var prompt in DisaggregationFaultTests.AllPrompts)
        {
            var (status, output, body) = await DisaggregationFaultTests.CompleteAsync(http, ModelName, prompt);
            Assert.True(status == 200, body);
            _expected[string.Join(',', prompt)] = output;
        }
    }

    public ValueTask DisposeAsync()
    {
        _dir.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Disaggregated prefill/decode across `tandem worker` processes with the random `small` preset and token-id prompts
/// that span several 16-token blocks with a partial last block: greedy outputs equal the aggregated server's for
/// decode-first and prefill-first over TCP and shared memory, with prefix-cache hits on either side; kill -9 of the
/// prefill worker in the middle of a KV transfer (a fault proxy in front of a KV port stops the blocks at a known byte
/// and reports it) costs only latency: the request completes with the same output through a local prefill, the
/// decode worker's blocks return to idle and the frontend goes on serving.
/// </summary>
public sealed class DisaggregationFaultTests(SmallPresetReference reference, ITestOutputHelper output) : IClassFixture<SmallPresetReference>
{
    /// <summary>Bytes a stalled direction lets through: past the handshake and request frames, inside the first layer's blocks (16 KiB per block and layer).</summary>
    private const long StallAfter = 40_000;

    private static readonly int[] Lengths = [70, 130, 200, 33];

    private static readonly TimeSpan RemotePrefillTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The KV transports' chunk timeout (<c>KvTransferOptions.ChunkTimeout</c>, not a flag of `tandem worker`).</summary>
    private static readonly TimeSpan ChunkTimeout = TimeSpan.FromSeconds(10);

    private static readonly int[] FaultPrompt = Prompt(200, 7);

    private static readonly int[][] AfterFaultPrompts = [Prompt(130, 8), Prompt(70, 9)];

    private static readonly List<int[]> DecodeFirstPrompts = PromptSet(1);

    private static readonly List<int[]> PrefillFirstPrompts = PromptSet(50);

    internal static IEnumerable<int[]> AllPrompts => [.. DecodeFirstPrompts, .. PrefillFirstPrompts, FaultPrompt, .. AfterFaultPrompts];

    private static int[] Prompt(int length, int seed) =>
        [.. Enumerable.Range(0, length).Select(i => 3 + (((seed * 7919) + (i * 104729) + (i * i * 31)) % 509))];

    /// <summary>Four prompts, then the first three again with their last 20 tokens replaced: prefix-cache hits.</summary>
    private static List<int[]> PromptSet(int seed)
    {
        var prompts = Lengths.Select((length, i) => Prompt(length, seed + i)).ToList();
        prompts.AddRange(prompts.Take(3).Select(p => p.Take(p.Length - 20).Concat(Prompt(20, seed + 99)).ToArray()));
        return prompts;
    }

    internal static async Task<(int Status, GreedyOutput Output, string Body)> CompleteAsync(HttpClient http, string model, int[] prompt)
    {
        var json = $$"""{"model":"{{model}}","prompt":[{{string.Join(',', prompt)}}],"max_tokens":12,"min_tokens":6,"ignore_eos":true,"temperature":0}""";
        using var response = await http.PostAsync(new Uri("v1/completions", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            return ((int)response.StatusCode, new GreedyOutput("", "", 0), body);
        }
        var root = JsonDocument.Parse(body).RootElement;
        var choice = root.GetProperty("choices")[0];
        return (200, new GreedyOutput(choice.GetProperty("text").GetString()!, choice.GetProperty("finish_reason").GetString()!, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32()), body);
    }

    private static HttpClient Client(Uri url) => new() { BaseAddress = url, Timeout = TimeSpan.FromSeconds(90) };

    private async Task AssertCompletesAsExpectedAsync(Cluster cluster, HttpClient http, int[] prompt)
    {
        var (status, completion, body) = await CompleteAsync(http, reference.ModelName, prompt);
        Assert.True(status == 200, $"{prompt.Length}-token prompt: {body}\n{string.Join('\n', cluster.Logs.TakeLast(60))}");
        Assert.Equal(reference.Expected(prompt), completion);
    }

    private static async Task<double> MetricOrZeroAsync(HttpClient http, string name, string labels) =>
        await Cluster.MetricAsync(http, name, labels) ?? 0;

    private Task<double> FallbacksAsync(HttpClient http, string reason) =>
        MetricOrZeroAsync(http, "tandem_worker_prefill_fallbacks_total", $"worker=\"decode-0\",model=\"{reference.ModelName}\",reason=\"{reason}\"");

    /// <summary>KV usage, running and waiting sequences of a worker, as the frontend's /metrics reports them.</summary>
    private static async Task<(double KvUsage, double Running, double Waiting)> KvStateAsync(HttpClient http, string worker)
    {
        var labels = $"worker=\"{worker}\"";
        var usage = await Cluster.MetricAsync(http, "tandem_worker_kv_cache_usage_ratio", labels);
        var running = await Cluster.MetricAsync(http, "tandem_worker_running_requests", labels);
        var waiting = await Cluster.MetricAsync(http, "tandem_worker_waiting_requests", labels);
        return (usage ?? double.NaN, running ?? double.NaN, waiting ?? double.NaN);
    }

    /// <summary>Polls until the worker's KV state equals <paramref name="idle"/>; fails after <paramref name="within"/>.</summary>
    private static async Task AssertKvStateAsync(HttpClient http, string worker, (double, double, double) idle, TimeSpan within)
    {
        var stopwatch = Stopwatch.StartNew();
        var state = await KvStateAsync(http, worker);
        while (state != idle && stopwatch.Elapsed < within)
        {
            await Task.Delay(100);
            state = await KvStateAsync(http, worker);
        }
        Assert.Equal(idle, state);
    }

    /// <summary>A fault test's cluster: the prefill and decode workers over TCP, one of them behind <paramref name="proxy"/>, and a frontend.</summary>
    private async Task<(Cluster Cluster, Process Prefill, HttpClient Http)> StartFaultClusterAsync(TcpFaultProxy proxy, int kvPort, bool proxyDecode, string strategy)
    {
        var cluster = new Cluster { ModelPath = reference.ModelPath };
        try
        {
            await cluster.StartInfrastructureAsync();
            string[] behindProxy = ["--kv-port", $"{kvPort}", "--kv-advertise-address", $"127.0.0.1:{proxy.Port}"];
            var prefill = await cluster.StartWorkerAsync("prefill-0", "prefill", ["--kv-transport", "tcp", .. proxyDecode ? [] : behindProxy]);
            await cluster.StartWorkerAsync("decode-0", "decode", [
                "--kv-transport", "tcp", "--max-local-prefill-length", "32", "--remote-prefill-timeout", $"{RemotePrefillTimeout.TotalSeconds}",
                .. proxyDecode ? behindProxy : []]);
            var (_, url) = await cluster.StartFrontendAsync("--strategy", strategy);
            return (cluster, prefill, Client(url));
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>The decode worker's idle KV state once the frontend lists both workers (before any request).</summary>
    private static async Task<(double, double, double)> IdleStateAsync(HttpClient http)
    {
        var stopwatch = Stopwatch.StartNew();
        var state = await KvStateAsync(http, "decode-0");
        var prefill = await KvStateAsync(http, "prefill-0");
        while (double.IsNaN(state.KvUsage + state.Running + state.Waiting + prefill.KvUsage) && stopwatch.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
            state = await KvStateAsync(http, "decode-0");
            prefill = await KvStateAsync(http, "prefill-0");
        }
        Assert.False(double.IsNaN(prefill.KvUsage), "the frontend does not list the prefill worker");
        Assert.Equal((0.0, 0.0, 0.0), state);
        return state;
    }

    [Fact]
    public async Task DecodeFirst_PrefillKilledMidPush_RequestFallsBackAsSoonAsThePushBreaks_AndNoBlocksLeak()
    {
        var kvPort = Cluster.FreePort();
        // The decode worker advertises the proxy as its KV address: the prefill worker pushes through it, and the
        // blocks stop after StallAfter bytes.
        await using var proxy = new TcpFaultProxy(new IPEndPoint(IPAddress.Loopback, kvPort)) { StallClientToServerAfter = StallAfter, CloseWhenStalledSourceCloses = true };
        var (cluster, prefill, http) = await StartFaultClusterAsync(proxy, kvPort, proxyDecode: true, "decode-first");
        await using var _ = cluster;
        using var __ = http;
        var idle = await IdleStateAsync(http);
        var afterKill = await KillPrefillMidTransferAsync(cluster, prefill, http, proxy);

        // The decode worker's KV server sees the push break off when the dead process's connection closes, and the
        // request stops waiting for the prefill queue's reply at once: it falls back well before --remote-prefill-timeout.
        Assert.Equal(1, await FallbacksAsync(http, "push_failed"));
        Assert.Equal(0, await FallbacksAsync(http, "timeout"));
        Assert.Equal(0, await MetricOrZeroAsync(http, "tandem_worker_remote_prefills_total", "worker=\"decode-0\""));
        Assert.True(afterKill < RemotePrefillTimeout, $"the request completed {afterKill} after the kill, not before the remote prefill timeout of {RemotePrefillTimeout}");

        // The reserved blocks are released at the fallback (well before the lease would expire, timeout + 5 s after the reservation).
        await AssertKvStateAsync(http, "decode-0", idle, TimeSpan.FromSeconds(3));

        // The frontend stays healthy; later long prompts fall back at once (nobody answers on the prefill queue).
        await AssertHealthyAfterTheKillAsync(cluster, http, idle, RemotePrefillTimeout);
        Assert.Equal(AfterFaultPrompts.Length, await FallbacksAsync(http, "no_prefill_worker"));
    }

    /// <summary>
    /// Sends the fault prompt, kills the prefill process with -9 once the proxy stalled the KV transfer part-way, and
    /// checks that the request still gets the aggregated answer; returns how long after the kill it came.
    /// </summary>
    private async Task<TimeSpan> KillPrefillMidTransferAsync(Cluster cluster, Process prefill, HttpClient http, TcpFaultProxy proxy)
    {
        var started = Stopwatch.StartNew();
        var request = CompleteAsync(http, reference.ModelName, FaultPrompt);
        await proxy.Stalled.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(request.IsCompleted);
        prefill.Kill();
        var killed = Stopwatch.StartNew();
        var (status, completion, body) = await request.WaitAsync(TimeSpan.FromSeconds(60));
        var afterKill = killed.Elapsed;
        output.WriteLine($"completed {started.Elapsed.TotalSeconds:0.00} s after it was sent, {afterKill.TotalSeconds:0.00} s after the kill");
        Assert.True(status == 200, body + string.Join('\n', cluster.Logs.TakeLast(60)));
        Assert.Equal(reference.Expected(FaultPrompt), completion);
        Assert.True(prefill.HasExited);
        return afterKill;
    }

    /// <summary>The frontend answers /health, later prompts complete correctly (each within <paramref name="within"/>) and the decode worker's KV returns to idle.</summary>
    private async Task AssertHealthyAfterTheKillAsync(Cluster cluster, HttpClient http, (double, double, double) idle, TimeSpan within)
    {
        using (var health = await http.GetAsync(new Uri("health", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        foreach (var prompt in AfterFaultPrompts)
        {
            var one = Stopwatch.StartNew();
            await AssertCompletesAsExpectedAsync(cluster, http, prompt);
            Assert.True(one.Elapsed < within, $"a request after the kill took {one.Elapsed}");
        }
        await AssertKvStateAsync(http, "decode-0", idle, TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task PrefillFirst_PrefillKilledMidPull_RequestFallsBackAsSoonAsTheConnectionCloses_AndNoBlocksLeak()
    {
        var kvPort = Cluster.FreePort();
        // The prefill worker advertises the proxy as its KV address: the decode worker pulls through it, and the blocks
        // (prefill → decode) stop after StallAfter bytes.
        await using var proxy = new TcpFaultProxy(new IPEndPoint(IPAddress.Loopback, kvPort)) { StallServerToClientAfter = StallAfter, CloseWhenStalledSourceCloses = true };
        var (cluster, prefill, http) = await StartFaultClusterAsync(proxy, kvPort, proxyDecode: false, "prefill-first");
        await using var _ = cluster;
        using var __ = http;
        var idle = await IdleStateAsync(http);
        var afterKill = await KillPrefillMidTransferAsync(cluster, prefill, http, proxy);

        // The closed connection fails the pull at once (not after the chunk timeout): the decode worker prefills itself.
        Assert.Equal(1, await FallbacksAsync(http, "pull_failed"));
        Assert.Equal(0, await MetricOrZeroAsync(http, "tandem_worker_remote_prefills_total", "worker=\"decode-0\""));
        Assert.True(afterKill < ChunkTimeout, $"the request completed {afterKill} after the kill");
        await AssertKvStateAsync(http, "decode-0", idle, TimeSpan.FromSeconds(3));
        await AssertHealthyAfterTheKillAsync(cluster, http, idle, ChunkTimeout);
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task DecodeFirstAndPrefillFirst_AcrossProcesses_TokenIdenticalToAggregated_WithPrefixHitsOnEitherSide(string transport)
    {
        await using var cluster = new Cluster { ModelPath = reference.ModelPath };
        await cluster.StartInfrastructureAsync();
        string[] kv = transport == "tcp" ? ["--kv-transport", "tcp"] : [];
        var prefill = await cluster.StartWorkerAsync("prefill-0", "prefill", kv);
        var decode = await cluster.StartWorkerAsync("decode-0", "decode", [.. kv, "--max-local-prefill-length", "32"]);
        // Two frontends over the same workers, one per strategy.
        var (_, decodeFirstUrl) = await cluster.StartFrontendAsync();
        var (_, prefillFirstUrl) = await cluster.StartFrontendAsync("--strategy", "prefill-first");
        using var decodeFirst = Client(decodeFirstUrl);
        using var prefillFirst = Client(prefillFirstUrl);
        var idle = await IdleStateAsync(decodeFirst);
        Assert.Equal(idle, await IdleStateAsync(prefillFirst));
        var hits = await PrefixHitsAsync(decodeFirst);

        foreach (var prompt in DecodeFirstPrompts)
        {
            await AssertCompletesAsExpectedAsync(cluster, decodeFirst, prompt);
        }
        // Local up to 32 uncached tokens: the 4 first prompts go remote (33 tokens is one above); of the repeats, which
        // hit the decode worker's own cache, the 70- and 200-token ones have 22 and 24 uncached tokens and stay local,
        // the 130-token one has 34 and goes remote with only its uncached blocks pushed.
        Assert.Equal(5, await MetricOrZeroAsync(decodeFirst, "tandem_worker_remote_prefills_total", "worker=\"decode-0\""));
        Assert.Equal(2, await MetricOrZeroAsync(decodeFirst, "tandem_worker_local_prefills_total", "worker=\"decode-0\""));
        var afterDecodeFirst = await PrefixHitsAsync(decodeFirst);
        Assert.True(afterDecodeFirst.Prefill > hits.Prefill && afterDecodeFirst.Decode > hits.Decode, $"prefix-cache hit tokens before {hits}, after {afterDecodeFirst}");
        // Over shared memory the prefill worker pushed straight into the decode worker's KV pool (mapped, no staging
        // segment); over TCP both pools are private memory.
        Assert.Equal(transport == "shm", await Cluster.MapsKvPoolOfAsync(prefill, decode));
        Assert.Empty(Cluster.StagingSegmentsOf(prefill));

        foreach (var prompt in PrefillFirstPrompts)
        {
            await AssertCompletesAsExpectedAsync(cluster, prefillFirst, prompt);
        }
        // Every prompt pulled from the prefill worker; the repeats hit the prefill worker's cache and, for their first
        // blocks, the decode worker's (only the blocks it does not hold are pulled).
        Assert.Equal(5 + PrefillFirstPrompts.Count, await MetricOrZeroAsync(prefillFirst, "tandem_worker_remote_prefills_total", "worker=\"decode-0\""));
        Assert.Equal(2, await MetricOrZeroAsync(prefillFirst, "tandem_worker_local_prefills_total", "worker=\"decode-0\""));
        var afterPrefillFirst = await PrefixHitsAsync(prefillFirst);
        Assert.True(afterPrefillFirst.Prefill > afterDecodeFirst.Prefill && afterPrefillFirst.Decode > afterDecodeFirst.Decode, $"prefix-cache hit tokens before {afterDecodeFirst}, after {afterPrefillFirst}");
        // The decode worker pulled straight out of the prefill worker's pool.
        Assert.Equal(transport == "shm", await Cluster.MapsKvPoolOfAsync(decode, prefill));
        Assert.Empty(Cluster.StagingSegmentsOf(decode));

        var metrics = await prefillFirst.GetStringAsync(new Uri("metrics", UriKind.Relative));
        Assert.DoesNotContain("tandem_worker_prefill_fallbacks_total{", metrics, StringComparison.Ordinal);
        await AssertKvStateAsync(prefillFirst, "decode-0", idle, TimeSpan.FromSeconds(3));
    }

    private static async Task<(double Prefill, double Decode)> PrefixHitsAsync(HttpClient http) =>
        (await MetricOrZeroAsync(http, "tandem_worker_prefix_cache_hit_tokens", "worker=\"prefill-0\""),
         await MetricOrZeroAsync(http, "tandem_worker_prefix_cache_hit_tokens", "worker=\"decode-0\""));
}
