using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;
using Tandem.Nats;
using Tandem.Runtime.Grpc;
using Tandem.Worker;

namespace Tandem.IntegrationTests;

/// <summary>
/// Numbers for docs/benchmarks.md (explicit: run with <c>--explicit only</c>): time from `tandem worker` start to its
/// first routed request, requests lost while workers drain under load, and the added latency of the NATS prefill queue
/// compared with a direct gRPC call. Results go to the test output and to <c>$TANDEM_BENCH_OUT</c>
/// (default <c>/tmp/tandem-distributed-bench.txt</c>).
/// </summary>
public class DistributedBenchmarks(ITestOutputHelper output)
{
    private const string Story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day";

    private static readonly string OutFile = Environment.GetEnvironmentVariable("TANDEM_BENCH_OUT") is { Length: > 0 } o ? o : "/tmp/tandem-distributed-bench.txt";

    private void Report(string line)
    {
        output.WriteLine(line);
        File.AppendAllText(OutFile, $"{DateTime.UtcNow:u} {line}\n");
    }

    private static string Stats(IReadOnlyList<double> values, string unit, string format = "0.00")
    {
        var sorted = values.Order().ToArray();
        string F(double v) => v.ToString(format, CultureInfo.InvariantCulture);
        return $"median {F(sorted[sorted.Length / 2])} {unit}, min {F(sorted[0])}, max {F(sorted[^1])} (n={sorted.Length})";
    }

    private static async Task WaitRoutedAsync(HttpClient http, string worker, TimeSpan timeout)
    {
        var stopwatch = Stopwatch.StartNew();
        while ((await Cluster.MetricAsync(http, "tandem_worker_local_prefills_total", $"worker=\"{worker}\"") ?? 0) <= 0)
        {
            Assert.True(stopwatch.Elapsed < timeout, $"{worker} took no request within {timeout}");
            await Task.Delay(20);
        }
    }

    [Fact(Explicit = true)]
    public async Task ScaleUpTime_AndRequestsLostDuringDrain()
    {
        const int Rounds = 5;
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        await cluster.StartWorkerAsync("base", "both");
        var (_, url) = await cluster.StartFrontendAsync();
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
        await using var load = new ClosedLoopLoad(url, clients: 4, (c, n) => $"{c} {n} {Story}", maxTokens: 32);
        await load.WaitForMoreAsync(8, TimeSpan.FromMinutes(2));
        List<double> toReady = [], toRouted = [], drainSeconds = [];
        var codes = new List<int>();
        for (var round = 0; round < Rounds; round++)
        {
            var id = $"extra-{round}";
            var started = Stopwatch.StartNew();
            var worker = await cluster.StartWorkerAsync(id, "both");
            var ready = started.Elapsed;
            await WaitRoutedAsync(http, id, TimeSpan.FromSeconds(60));
            toReady.Add(ready.TotalSeconds);
            toRouted.Add(started.Elapsed.TotalSeconds);
            await load.WaitForMoreAsync(8, TimeSpan.FromMinutes(2));
            var drain = Stopwatch.StartNew();
            Cluster.Terminate(worker);
            codes.Add(await Cluster.WaitExitAsync(worker, TimeSpan.FromSeconds(90)));
            drainSeconds.Add(drain.Elapsed.TotalSeconds);
        }
        await load.StopAsync();
        Report($"worker start -> ready line (model loaded, registered): {Stats(toReady, "s")}");
        Report($"worker start -> first request routed to it: {Stats(toRouted, "s")}");
        Report($"ready -> first routed: {Stats([.. toRouted.Zip(toReady, (a, b) => a - b)], "s", "0.000")}");
        Report($"SIGTERM -> exit under load (4 clients): {Stats(drainSeconds, "s")}; exit codes {string.Join(',', codes)}");
        Report($"requests during {Rounds} scale-up/drain rounds: {load.Succeeded} succeeded, {load.Failed} failed (goal 0)");
        Assert.True(load.Failed == 0, load.Describe());
        Assert.All(codes, c => Assert.Equal(0, c));
    }

    /// <summary>A worker whose context-only prefill answers at once: the gRPC side of the transport comparison.</summary>
    private sealed class InstantPrefillWorker : IWorkerClient
    {
        public WorkerInstance Instance { get; } = new() { InstanceId = "bench", Role = WorkerRole.Prefill, Model = "m" };

        public IAsyncEnumerable<TokenOutput> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask<EngineStats> GetStatsAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(new EngineStats());

        public Task<PrefillHandle> PrefillAsync(GenerateRequest request, CancellationToken cancellationToken = default) =>
            Task.FromResult(new PrefillHandle(new TokenOutput { Index = 0, TokenId = 42 }, new RemoteKv("tcp://127.0.0.1:1", 7, request.PromptTokens.Count / 16, 42, float.NaN, "bench")));
    }

    [Fact(Explicit = true)]
    public async Task PrefillQueueOverNats_VersusDirectGrpc_AddedLatency()
    {
        const int Warmup = 200;
        const int Samples = 2000;
        await using var cluster = new Cluster();
        await cluster.StartInfrastructureAsync();
        var ct = TestContext.Current.CancellationToken;
        var prompt = Enumerable.Range(0, 512).Select(i => 3 + (i % 500)).ToArray();

        // NATS: the decode worker's request on the prefill queue (queue group), answered by another connection.
        await using var requester = await NatsEventBus.ConnectAsync(new NatsOptions { Url = cluster.Nats }, ct);
        await using var responder = await NatsEventBus.ConnectAsync(new NatsOptions { Url = cluster.Nats }, ct);
        var subject = new DisaggregationOptions().PrefillSubject("m");
        await using var queue = await responder.Connection.SubscribeAsync(subject, "prefill", ct);
        // Payloads shaped like the prefill protocol's JSON (PrefillProtocol is internal to the worker).
        var reply = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new { ok = true, first_token = 42, first_logprob = 0.0, cached_prompt_tokens = 0, prefill_worker = "bench" });
        var answering = Task.Run(async () =>
        {
            await foreach (var m in queue.Messages.ReadAllAsync(ct))
            {
                await responder.PublishAsync(m.ReplyTo!, reply, cancellationToken: ct);
            }
        }, ct);
        await responder.Connection.FlushAsync(ct);
        var message = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new
        {
            request_id = "bench",
            prompt_tokens = prompt,
            sampling = new { temperature = 0.0, top_k = 0, top_p = 1.0 },
            max_tokens = 16,
            kv_destination = "tcp://127.0.0.1:1",
            kv_handle = 1,
            first_block = 0,
            model_fingerprint = "sha256:bench",
            deadline_unix_ms = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds(),
        });
        async Task<double> NatsOnceAsync()
        {
            var t = Stopwatch.GetTimestamp();
            await requester.RequestAsync(subject, message, TimeSpan.FromSeconds(10), ct);
            return Stopwatch.GetElapsedTime(t).TotalMicroseconds;
        }

        // gRPC: the frontend's direct context-only Prefill call to a worker process's request plane.
        await using var host = await WorkerRpcHost.StartAsync(new InstantPrefillWorker(), new WorkerRpcHostOptions(), null, NullLoggerFactory.Instance, ct);
        using var plane = new GrpcRequestPlane();
        var client = plane.GetClient(new WorkerInstance { InstanceId = "bench", Role = WorkerRole.Prefill, Model = "m", Endpoints = new Dictionary<string, string> { ["rpc"] = host.Url.ToString() } });
        var request = new GenerateRequest { RequestId = "bench", PromptTokens = prompt, MaxTokens = 16 };
        async Task<double> GrpcOnceAsync()
        {
            var t = Stopwatch.GetTimestamp();
            await client.PrefillAsync(request, ct);
            return Stopwatch.GetElapsedTime(t).TotalMicroseconds;
        }

        for (var i = 0; i < Warmup; i++)
        {
            await NatsOnceAsync();
            await GrpcOnceAsync();
        }
        // Interleaved, so both see the same machine load.
        List<double> nats = [], grpc = [];
        for (var i = 0; i < Samples; i++)
        {
            nats.Add(await NatsOnceAsync());
            grpc.Add(await GrpcOnceAsync());
        }
        static double P(List<double> v, double q) => v.Order().ElementAt((int)(q * (v.Count - 1)));
        Report($"prefill request with 512 prompt tokens ({message.Length} bytes as JSON), round trip on loopback, {Samples} interleaved samples:");
        Report($"  NATS request-reply on the prefill queue: p50 {P(nats, 0.5):0} us, p90 {P(nats, 0.9):0} us, p99 {P(nats, 0.99):0} us");
        Report($"  direct gRPC Prefill call:                p50 {P(grpc, 0.5):0} us, p90 {P(grpc, 0.9):0} us, p99 {P(grpc, 0.99):0} us");
        Report($"  added by the NATS queue (p50 difference): {P(nats, 0.5) - P(grpc, 0.5):0} us");
        Assert.False(answering.IsFaulted, answering.Exception?.ToString());
    }

    [Fact(Explicit = true)]
    public async Task TimeToFirstToken_DecodeFirstOverNats_VersusPrefillFirstOverGrpc()
    {
        const int Requests = 30;
        var results = new Dictionary<string, List<double>>();
        foreach (var (name, frontendArgs) in new[] { ("decode-first (NATS prefill queue, KV pushed)", Array.Empty<string>()), ("prefill-first (gRPC Prefill, KV pulled)", ["--strategy", "prefill-first"]) })
        {
            await using var cluster = new Cluster();
            await cluster.StartInfrastructureAsync();
            await cluster.StartWorkerAsync("prefill-0", "prefill");
            await cluster.StartWorkerAsync("decode-0", "decode", "--max-local-prefill-length", "8");
            var (_, url) = await cluster.StartFrontendAsync(frontendArgs);
            using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
            var ttft = new List<double>();
            for (var i = -5; i < Requests; i++)
            {
                var body = $$"""{"model":"stories260K","prompt":"{{i}} {{Story}} {{Story}}","max_tokens":2,"ignore_eos":true,"stream":true,"temperature":0}""";
                using var message = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                var t = Stopwatch.GetTimestamp();
                using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
                Assert.True(response.IsSuccessStatusCode);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                while (await reader.ReadLineAsync() is { } line && !line.StartsWith("data: {", StringComparison.Ordinal))
                {
                }
                var elapsed = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                await reader.ReadToEndAsync();
                if (i >= 0)
                {
                    ttft.Add(elapsed);
                }
            }
            var remote = await Cluster.MetricAsync(http, "tandem_worker_remote_prefills_total", "worker=\"decode-0\"");
            Assert.True(remote >= Requests, $"{name}: only {remote} remote prefills");
            results[name] = ttft;
        }
        Report($"TTFT of {Requests} sequential requests (~60 prompt tokens, stories260K, remote prefill every time):");
        foreach (var (name, ttft) in results)
        {
            Report($"  {name}: {Stats(ttft, "ms", "0.0")}");
        }
    }
}
