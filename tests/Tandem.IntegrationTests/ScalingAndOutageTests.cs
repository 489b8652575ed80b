using System.Diagnostics;
using System.Text;

namespace Tandem.IntegrationTests;

/// <summary>
/// Separate processes under a closed-loop load: a worker added while requests run takes traffic, a worker stopped
/// with SIGTERM drains without failing a request, and nats-server and etcd restarted mid-load cost no request.
/// No timing is asserted beyond generous "within a minute" bounds; the numbers are printed for the record.
/// </summary>
public class ScalingAndOutageTests(ITestOutputHelper output)
{
    private const string Story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day";

    private static string VariedPrompt(int client, long n) => $"{client} {n} {Story}";

    private static HttpClient Http(Uri url) => new() { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>Polls the frontend's /metrics until the series is above <paramref name="above"/>; returns how long that took.</summary>
    private static async Task<TimeSpan> WaitMetricAboveAsync(HttpClient http, string name, string labels, double above, TimeSpan timeout, Func<string> context)
    {
        var stopwatch = Stopwatch.StartNew();
        string? lastError = null;
        while (true)
        {
            try
            {
                if ((await Cluster.MetricAsync(http, name, labels) ?? double.NegativeInfinity) > above)
                {
                    return stopwatch.Elapsed;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                lastError = $"{stopwatch.Elapsed.TotalSeconds:0.0} s: /metrics failed: {e.Message}";
            }
            if (stopwatch.Elapsed > timeout)
            {
                Assert.Fail($"{name}{{{labels}}} stayed at or below {above} for {timeout} ({lastError}): {context()}");
            }
            await Task.Delay(100);
        }
    }

    private static Func<string> Context(ClosedLoopLoad load, Cluster cluster) =>
        () => load.Describe() + "\nlogs:\n" + string.Join('\n', cluster.Logs.Where(l => l.Contains("warn", StringComparison.OrdinalIgnoreCase) || l.Contains("fail", StringComparison.OrdinalIgnoreCase)).Take(60));

    [Fact]
    public async Task ScaleUpAndGracefulScaleDown_UnderLoad_NoRequestFails()
    {
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        var first = await cluster.StartWorkerAsync("agg-0", "both");
        var (_, url) = await cluster.StartFrontendAsync();
        using var http = Http(url);
        await using var load = new ClosedLoopLoad(url, clients: 4, VariedPrompt);
        await load.WaitForMoreAsync(8, TimeSpan.FromMinutes(2));

        // Scale up: a second worker takes requests within seconds of starting.
        var started = Stopwatch.StartNew();
        await cluster.StartWorkerAsync("agg-1", "both");
        var ready = started.Elapsed;
        var routed = await WaitMetricAboveAsync(http, "tandem_worker_local_prefills_total", "worker=\"agg-1\"", 0, TimeSpan.FromSeconds(60), Context(load, cluster));
        output.WriteLine($"scale-up: process start to ready {ready.TotalSeconds:0.00} s, ready to first routed request {routed.TotalSeconds:0.00} s");

        // Scale down: SIGTERM the first worker while requests stream on it; it drains and exits 0.
        await load.WaitForMoreAsync(8, TimeSpan.FromMinutes(2));
        var before = load.Succeeded;
        Cluster.Terminate(first);
        var code = await Cluster.WaitExitAsync(first, TimeSpan.FromSeconds(90));
        Assert.True(code == 0, $"exit code {code}; {string.Join('\n', cluster.Logs.Where(l => l.Contains("drain", StringComparison.Ordinal)))}");
        await load.WaitForMoreAsync(8, TimeSpan.FromMinutes(2));
        await load.StopAsync();
        output.WriteLine($"graceful scale-down: {load.Succeeded - before} requests after SIGTERM, {load.Failed} failed in all ({load.Succeeded} succeeded)");
        Assert.True(load.Failed == 0, load.Describe());
        Assert.Contains(cluster.Logs, l => l.Contains("tandem: worker drained", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PrefillWorkers_ScaleUpAndGracefulScaleDown_UnderLoad_NoRequestFails()
    {
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        var first = await cluster.StartWorkerAsync("prefill-0", "prefill");
        await cluster.StartWorkerAsync("decode-0", "decode", "--max-local-prefill-length", "8");
        var (_, url) = await cluster.StartFrontendAsync();
        using var http = Http(url);
        await using var load = new ClosedLoopLoad(url, clients: 3, VariedPrompt);
        const string remote = "tandem_worker_remote_prefills_total";
        const string decode = "worker=\"decode-0\"";
        await WaitMetricAboveAsync(http, remote, decode, 0, TimeSpan.FromSeconds(60), Context(load, cluster));

        // A second prefill worker joins the queue group and takes prefills within seconds.
        await cluster.StartWorkerAsync("prefill-1", "prefill");
        var took = await WaitMetricAboveAsync(http, "tandem_worker_prefix_cache_queried_tokens", "worker=\"prefill-1\"", 0, TimeSpan.FromSeconds(60), Context(load, cluster));
        output.WriteLine($"new prefill worker took its first prefill {took.TotalSeconds:0.00} s after it was ready");

        // SIGTERM the first: it leaves the queue, finishes what it took, exits 0; prefills go on on the other.
        Cluster.Terminate(first);
        Assert.Equal(0, await Cluster.WaitExitAsync(first, TimeSpan.FromSeconds(90)));
        var remoteAfterExit = await Cluster.MetricAsync(http, remote, decode) ?? 0;
        await WaitMetricAboveAsync(http, remote, decode, remoteAfterExit + 3, TimeSpan.FromSeconds(60), Context(load, cluster));
        await load.StopAsync();
        Assert.True(load.Failed == 0, load.Describe());
    }

    [Fact]
    public async Task Drain_DeadlineMissed_ExitsWith3()
    {
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        var worker = await cluster.StartWorkerAsync("agg-0", "both", "--drain-timeout", "0.1");
        var (_, url) = await cluster.StartFrontendAsync();
        using var http = Http(url);
        var streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stream = Task.Run(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
            {
                Content = new StringContent("""{"model":"stories260K","prompt":"Once","max_tokens":1900,"ignore_eos":true,"stream":true}""", Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var all = new StringBuilder();
            while (await reader.ReadLineAsync() is { } line)
            {
                all.AppendLine(line);
                streaming.TrySetResult();
            }
            streaming.TrySetResult();
            return all.ToString();
        });
        await streaming.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Cluster.Terminate(worker);
        Assert.Equal(3, await Cluster.WaitExitAsync(worker, TimeSpan.FromSeconds(60)));
        var text = await stream.WaitAsync(TimeSpan.FromSeconds(60));
        // The request cut off by the deadline ends with an error event (no hang), unless it happened to finish first.
        Assert.True(text.TrimEnd().EndsWith("[DONE]", StringComparison.Ordinal), text.Length > 400 ? text[^400..] : text);
        Assert.Contains(cluster.Logs, l => l.Contains("drain deadline missed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task NatsAndEtcdRestart_UnderLoad_NoRequestFails_AndEverythingReconnects()
    {
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        await cluster.StartWorkerAsync("prefill-0", "prefill");
        await cluster.StartWorkerAsync("decode-0", "decode", "--max-local-prefill-length", "8");
        var (_, url) = await cluster.StartFrontendAsync();
        using var http = Http(url);
        await using var load = new ClosedLoopLoad(url, clients: 3, VariedPrompt);
        const string remote = "tandem_worker_remote_prefills_total";
        const string decode = "worker=\"decode-0\"";
        await WaitMetricAboveAsync(http, remote, decode, 0, TimeSpan.FromSeconds(60), Context(load, cluster));

        // NATS down: the decode worker prefills locally at once (bus_unavailable) instead of waiting for the queue.
        await Cluster.KillAsync(cluster.NatsProcess);
        var down = Stopwatch.StartNew();
        await load.WaitForMoreAsync(6, TimeSpan.FromMinutes(2));
        var servedWhileDown = down.Elapsed;
        await WaitMetricAboveAsync(http, "tandem_worker_prefill_fallbacks_total", "reason=\"bus_unavailable\"", 0, TimeSpan.FromSeconds(30), Context(load, cluster));
        output.WriteLine($"nats down: 6 requests served by local prefill in {servedWhileDown.TotalSeconds:0.00} s");

        // NATS back: both workers reconnect and resubscribe by themselves; remote prefills resume.
        var remoteBefore = await Cluster.MetricAsync(http, remote, decode) ?? 0;
        await cluster.RestartAsync(cluster.NatsProcess);
        var back = await WaitMetricAboveAsync(http, remote, decode, remoteBefore, TimeSpan.FromSeconds(60), Context(load, cluster));
        output.WriteLine($"nats restarted: remote prefills resumed after {back.TotalSeconds:0.00} s");

        // etcd down: requests do not need it (the frontend keeps its last snapshot).
        await Cluster.KillAsync(cluster.EtcdProcess);
        await load.WaitForMoreAsync(6, TimeSpan.FromMinutes(2));
        await cluster.RestartAsync(cluster.EtcdProcess);

        // etcd back: registration and the frontend's watch recover; a new worker is seen and routed to.
        var started = Stopwatch.StartNew();
        await cluster.StartWorkerAsync("decode-1", "decode", "--max-local-prefill-length", "8");
        await WaitMetricAboveAsync(http, remote, "worker=\"decode-1\"", 0, TimeSpan.FromSeconds(60), Context(load, cluster));
        output.WriteLine($"etcd restarted: new decode worker routed to {started.Elapsed.TotalSeconds:0.00} s after its start");
        await load.WaitForMoreAsync(6, TimeSpan.FromMinutes(2));
        await load.StopAsync();
        Assert.True(load.Failed == 0, load.Describe());
    }

    [Fact]
    public async Task KvRouter_AcrossProcesses_PrefersTheWorkerHoldingThePrefix()
    {
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        await cluster.StartWorkerAsync("agg-0", "both");
        await cluster.StartWorkerAsync("agg-1", "both");
        var (_, url) = await cluster.StartFrontendAsync("--router", "kv", "--nats", cluster.Nats, "--router-seed", "7");
        using var http = Http(url);
        var prefix = $"{Story} {Story} {Story}";

        async Task CompleteAsync(string prompt)
        {
            using var response = await http.PostAsync(new Uri("v1/completions", UriKind.Relative), new StringContent($$"""{"model":"stories260K","prompt":"{{prompt}}","max_tokens":4,"temperature":0}""", Encoding.UTF8, "application/json"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        async Task<double[]> PrefillsAsync() =>
            [await Cluster.MetricAsync(http, "tandem_worker_local_prefills_total", "worker=\"agg-0\"") ?? 0, await Cluster.MetricAsync(http, "tandem_worker_local_prefills_total", "worker=\"agg-1\"") ?? 0];

        await CompleteAsync(prefix);
        var afterFirst = await PrefillsAsync();
        var holder = afterFirst[0] > 0 ? 0 : 1;
        // The worker's KV events reach the frontend's index over NATS.
        await WaitMetricAboveAsync(http, "tandem_router_kv_indexed_blocks", "", 0, TimeSpan.FromSeconds(30), () => string.Join('\n', cluster.Logs));
        for (var i = 0; i < 6; i++)
        {
            await CompleteAsync($"{prefix} and then {i}");
        }
        var after = await PrefillsAsync();
        output.WriteLine($"prefills after the first request {afterFirst[0]}/{afterFirst[1]}, after six more with the same prefix {after[0]}/{after[1]}");
        Assert.Equal(afterFirst[holder] + 6, after[holder]);
        Assert.Equal(afterFirst[1 - holder], after[1 - holder]);
        Assert.True(await Cluster.MetricAsync(http, "tandem_router_kv_events_received_total") > 0);
        Assert.Equal(1, await Cluster.MetricAsync(http, "tandem_router_event_bus_connected"));
    }
}
