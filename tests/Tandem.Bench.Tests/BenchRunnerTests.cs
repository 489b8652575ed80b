using System.Text.Json;
using Tandem.Bench.Load;
using Tandem.Bench.Metrics;
using Tandem.Bench.Reports;

namespace Tandem.Bench.Tests;

/// <summary>Whole runs against the stub server. Timing tests use comfortable gaps so that a loaded machine stays within bounds.</summary>
public class BenchRunnerTests
{
    private static BenchOptions Options(StubOpenAiServer server) => new()
    {
        Url = server.Url,
        Model = "stub-model",
        Requests = 4,
        InputLength = 16,
        OutputLength = 5,
        Timeout = TimeSpan.FromSeconds(30),
    };

    [Fact]
    public async Task RunAsync_ScriptedSchedule_MeasuresTtftItlTpotAndThroughput()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, _) => new StubScript { FirstToken = TimeSpan.FromMilliseconds(300), Interval = TimeSpan.FromMilliseconds(100), KeepAlives = true });
        var result = await BenchRunner.RunAsync(Options(server) with { Concurrency = 2, WarmupRequests = 1 }, cancellationToken: TestContext.Current.CancellationToken);
        var summary = BenchSummary.Compute(result.Records, result.DurationSeconds, null, null);

        Assert.Equal(4, summary.Completed);
        Assert.Equal(0, summary.Failed);
        Assert.Equal(5, server.Bodies.Count); // one warm-up request, not measured
        Assert.Equal(2, server.MaxActive);
        Assert.All(result.Records, r =>
        {
            Assert.Equal(5, r.OutputTokens);
            Assert.Equal(5, r.Chunks);
            Assert.True(r.UsageReported);
            Assert.Equal(4, r.ItlMs.Length);
        });
        // Lower bounds are tight (the stub never answers sooner); upper bounds leave room for a loaded CI machine.
        Assert.InRange(summary.TtftMs!.P50, 295, 600);
        Assert.InRange(summary.ItlMs!.Mean, 92, 200);
        Assert.InRange(summary.TpotMs!.Mean, 92, 200);
        Assert.InRange(summary.E2eMs!.P50, 695, 1400);
        // Two rounds of two requests, ~0.7 s each: ~2.9 requests/s and five tokens per request.
        Assert.InRange(summary.RequestThroughput, 1.2, 3.0);
        Assert.InRange(summary.OutputTokenThroughput / summary.RequestThroughput, 4.99, 5.01);
        Assert.Equal(summary.TotalInputTokens + summary.TotalOutputTokens, (long)Math.Round(summary.TotalTokenThroughput * summary.DurationSeconds));
    }

    [Fact]
    public async Task RunAsync_Request_SendsLengthControlsAndUsageOption()
    {
        await using var server = await StubOpenAiServer.StartAsync();
        var options = Options(server) with { Requests = 1, OutputLength = 7, ApiKey = "secret" };
        await BenchRunner.RunAsync(options, cancellationToken: TestContext.Current.CancellationToken);
        var body = Assert.Single(server.Bodies);
        Assert.Equal("stub-model", body.GetProperty("model").GetString());
        Assert.Equal(7, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(7, body.GetProperty("min_tokens").GetInt32());
        Assert.True(body.GetProperty("ignore_eos").GetBoolean());
        Assert.True(body.GetProperty("stream").GetBoolean());
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal(16, body.GetProperty("messages")[0].GetProperty("content").GetString()!.Split(' ').Length);
        Assert.Equal("Bearer secret", Assert.Single(server.AuthorizationHeaders));

        await using var strict = await StubOpenAiServer.StartAsync();
        await BenchRunner.RunAsync(Options(strict) with { Requests = 1, NoExtensions = true }, cancellationToken: TestContext.Current.CancellationToken);
        var plain = Assert.Single(strict.Bodies);
        Assert.False(plain.TryGetProperty("min_tokens", out _));
        Assert.False(plain.TryGetProperty("ignore_eos", out _));
    }

    [Fact]
    public async Task RunAsync_TokenIdPrompts_SendExactLengthsToCompletions()
    {
        await using var server = await StubOpenAiServer.StartAsync();
        var options = Options(server) with { Endpoint = BenchEndpoint.Completions, PromptFormat = PromptFormat.TokenIds, InputLength = 33, Requests = 2, VocabSize = 1000 };
        var result = await BenchRunner.RunAsync(options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.All(server.Bodies, b =>
        {
            var prompt = b.GetProperty("prompt");
            Assert.Equal(JsonValueKind.Array, prompt.ValueKind);
            Assert.Equal(33, prompt.GetArrayLength());
            Assert.All(prompt.EnumerateArray(), id => Assert.InRange(id.GetInt32(), 0, 999));
        });
        Assert.All(result.Records, r => Assert.Equal(33, r.InputTokens));
    }

    [Fact]
    public async Task RunAsync_UsageDiffersFromChunks_PrefersUsage()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, _) => new StubScript { Chunks = 3, TokensPerChunk = 2 });
        var result = await BenchRunner.RunAsync(Options(server) with { Requests = 1 }, cancellationToken: TestContext.Current.CancellationToken);
        var record = Assert.Single(result.Records);
        Assert.Equal(6, record.OutputTokens);
        Assert.Equal(3, record.Chunks);

        await using var silent = await StubOpenAiServer.StartAsync((_, _) => new StubScript { Chunks = 3, TokensPerChunk = 2, SendUsage = false });
        var counted = Assert.Single((await BenchRunner.RunAsync(Options(silent) with { Requests = 1 }, cancellationToken: TestContext.Current.CancellationToken)).Records);
        Assert.Equal(3, counted.OutputTokens);
        Assert.False(counted.UsageReported);
    }

    [Fact]
    public async Task RunAsync_Failures_AreCountedByKind()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, i) => (i % 4) switch
        {
            0 => new StubScript { Status = 503 },
            1 => new StubScript { ErrorAfter = 2 },
            2 => new StubScript { TruncateAfter = 2 },
            _ => new StubScript(),
        });
        var result = await BenchRunner.RunAsync(Options(server) with { Requests = 8 }, cancellationToken: TestContext.Current.CancellationToken);
        var summary = BenchSummary.Compute(result.Records, result.DurationSeconds, null, null);
        Assert.Equal(2, summary.Completed);
        Assert.Equal(6, summary.Failed);
        Assert.Equal(new Dictionary<string, int> { ["http_503"] = 2, ["stream_error"] = 2, ["stream_truncated"] = 2 }, summary.ErrorsByKind);
        Assert.Contains("scripted mid-stream failure", result.Records.First(r => r.ErrorKind == "stream_error").Error);
    }

    [Fact]
    public async Task RunAsync_SlowServer_TimesOutPerRequest()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, _) => new StubScript { FirstToken = TimeSpan.FromSeconds(10) });
        var started = DateTime.UtcNow;
        var result = await BenchRunner.RunAsync(Options(server) with { Requests = 2, Concurrency = 2, Timeout = TimeSpan.FromMilliseconds(300) }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.All(result.Records, r => Assert.Equal("timeout", r.ErrorKind));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task RunAsync_NoServer_ReportsConnectionErrors()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var options = new BenchOptions { Url = new Uri($"http://127.0.0.1:{port}"), Model = "m", Requests = 2, Timeout = TimeSpan.FromSeconds(5) };
        var result = await BenchRunner.RunAsync(options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.All(result.Records, r => Assert.Equal("connection", r.ErrorKind));
    }

    [Fact]
    public async Task RunAsync_NonStreaming_MeasuresE2eAndUsage()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, _) => new StubScript { FirstToken = TimeSpan.FromMilliseconds(100), Interval = TimeSpan.FromMilliseconds(10) });
        var result = await BenchRunner.RunAsync(Options(server) with { Requests = 2, Stream = false }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.All(result.Records, r =>
        {
            Assert.True(r.Success, r.Error);
            Assert.Null(r.TtftMs);
            Assert.Equal(5, r.OutputTokens);
            Assert.InRange(r.E2eMs, 135, 400);
        });
        Assert.False(server.Bodies.First().TryGetProperty("stream_options", out _));
    }

    [Fact]
    public async Task RunAsync_RequestRate_SpreadsArrivals()
    {
        await using var server = await StubOpenAiServer.StartAsync();
        var result = await BenchRunner.RunAsync(Options(server) with { Requests = 20, RequestRate = 20, Seed = 4 }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(20, result.Records.Count(r => r.Success));
        var last = result.Records.Max(r => r.StartMs);
        Assert.InRange(last, 300, 2500); // 19 gaps of 50 ms on average
    }

    [Fact]
    public async Task RunAsync_Duration_StopsIssuingInTime()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, _) => new StubScript { FirstToken = TimeSpan.FromMilliseconds(50), Interval = TimeSpan.FromMilliseconds(10) });
        var options = Options(server) with { Requests = null, Duration = TimeSpan.FromMilliseconds(800), Concurrency = 2 };
        Assert.Null(options.EffectiveRequests);
        var result = await BenchRunner.RunAsync(options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.InRange(result.Records.Count, 4, 20);
        Assert.All(result.Records, r => Assert.True(r.StartMs < 800));
        Assert.InRange(result.DurationSeconds, 0.8, 2.0);
    }

    [Fact]
    public async Task RunAsync_TraceReplay_HonoursTimestampsAndSharesPrefixes()
    {
        var path = Path.Combine(Path.GetTempPath(), $"trace-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path,
        [
            "{\"timestamp\": 0, \"input_length\": 40, \"output_length\": 3, \"hash_ids\": [0, 1, 2]}",
            "{\"timestamp\": 600, \"input_length\": 40, \"output_length\": 2, \"hash_ids\": [0, 1, 5]}",
        ]);
        try
        {
            await using var server = await StubOpenAiServer.StartAsync();
            var options = Options(server) with { Requests = null, TracePath = path, TraceBlockSize = 16, Speedup = 2, Endpoint = BenchEndpoint.Completions, PromptFormat = PromptFormat.TokenIds };
            var result = await BenchRunner.RunAsync(options, cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal(2, result.Records.Count);
            Assert.InRange(result.Records[1].StartMs, 290, 500); // 600 ms at speedup 2
            Assert.Equal([3, 2], result.Records.Select(r => r.OutputTokens));
            var prompts = server.Bodies.Select(b => b.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToList();
            Assert.Equal(prompts[0][..32], prompts[1][..32]);
            Assert.NotEqual(prompts[0][32..], prompts[1][32..]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task RunAsync_CancelledMidway_StillWritesReportWithCompletedRequests()
    {
        await using var server = await StubOpenAiServer.StartAsync((_, _) => new StubScript { FirstToken = TimeSpan.FromMilliseconds(20), Interval = TimeSpan.FromMilliseconds(20) });
        var dir = Path.Combine(Path.GetTempPath(), $"bench-{Guid.NewGuid():N}");
        var json = Path.Combine(dir, "report.json");
        var html = Path.Combine(dir, "report.html");
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            cts.CancelAfter(TimeSpan.FromMilliseconds(1500));
            using var output = new StringWriter();
            var options = Options(server) with { Requests = 1000, OutputLength = 10, Concurrency = 2, OutputPath = json, HtmlPath = html };
            var started = DateTime.UtcNow;
            var exit = await BenchApplication.RunAsync(options, output, interactive: false, cts.Token);
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
            Assert.Equal(130, exit);
            var report = BenchReport.Read(json);
            Assert.True(report.Interrupted);
            Assert.InRange(report.Summary.Completed, 1, 999);
            Assert.Equal(0, report.Summary.Failed);
            Assert.InRange(report.Summary.Cancelled, 1, 2);
            Assert.Equal(report.Summary.Completed + report.Summary.Cancelled, report.Requests.Count);
            Assert.True(File.Exists(html));
            Assert.Contains("interrupted", output.ToString());
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
