using System.Net;
using System.Text.Json;
using Tandem.Engine.Serving;
using Tandem.Hosting;

namespace Tandem.Frontend.Tests;

/// <summary>API keys, body size, prompt limits, admission control, timeouts, drain, and the metrics they leave.</summary>
public class LimitsTests
{
    private static Task<EmbeddedServer> Start(FrontendOptions frontend) => Stories260KServer.StartAsync(new EmbeddedServerOptions
    {
        ModelPath = TestModels.Stories260K,
        Threads = 1,
        Serving = new ServingOptions { NumKvBlocks = 256 },
        Frontend = frontend with { Port = 0 },
    });

    private const string Small = """{"model":"stories260K","prompt":"Once","max_tokens":4}""";
    private const string Endless = """{"model":"stories260K","prompt":"Once","max_tokens":2000,"ignore_eos":true,"stream":true}""";

    [Fact]
    public async Task ApiKey_MissingOrWrong_Is401_RightKeyServes_HealthStaysOpen()
    {
        await using var server = await Start(new FrontendOptions { ApiKeys = ["k1", "k2"] });
        using var anonymous = Stories260KServer.Client(server);
        using var wrong = Stories260KServer.Client(server, "nope");
        using var right = Stories260KServer.Client(server, "k2");
        var (status, error) = await HttpJson.PostAsync(anonymous, "v1/completions", Small);
        Assert.Equal(401, status);
        Assert.Equal("invalid_api_key", error.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(401, (await HttpJson.PostAsync(wrong, "v1/completions", Small)).Status);
        Assert.Equal(401, (int)(await wrong.GetAsync("v1/models")).StatusCode);
        Assert.Equal(200, (await HttpJson.PostAsync(right, "v1/completions", Small)).Status);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("metrics")).StatusCode);
    }

    [Fact]
    public async Task Body_LargerThanLimit_Is413()
    {
        await using var server = await Start(new FrontendOptions { MaxRequestBodyBytes = 4096 });
        using var http = Stories260KServer.Client(server);
        var big = $$"""{"model":"stories260K","prompt":"{{new string('a', 10_000)}}"}""";
        var (status, error) = await HttpJson.PostAsync(http, "v1/completions", big);
        Assert.Equal(413, status);
        Assert.Contains("4096", HttpJson.ErrorMessage(error), StringComparison.Ordinal);
        Assert.Equal(200, (await HttpJson.PostAsync(http, "v1/completions", Small)).Status);
    }

    [Fact]
    public async Task MaxPromptAndTotalTokens_AreEnforcedWithTheLimitsInTheMessage()
    {
        await using var server = await Start(new FrontendOptions { MaxPromptTokens = 8, MaxTotalTokens = 20 });
        using var http = Stories260KServer.Client(server);
        var (status, error) = await HttpJson.PostAsync(http, "v1/completions", """{"model":"stories260K","prompt":"Once upon a time there was a girl named Lily","max_tokens":2}""");
        Assert.Equal(400, status);
        Assert.Contains("limit of 8 prompt tokens", HttpJson.ErrorMessage(error), StringComparison.Ordinal);
        (status, error) = await HttpJson.PostAsync(http, "v1/completions", """{"model":"stories260K","prompt":"Once","max_tokens":30}""");
        Assert.Equal(400, status);
        Assert.Contains("20 tokens", HttpJson.ErrorMessage(error), StringComparison.Ordinal);
        // Without max_tokens the answer fills the room left (20 − 2 prompt tokens).
        var (ok, body) = await HttpJson.PostAsync(http, "v1/completions", """{"model":"stories260K","prompt":"Once","ignore_eos":true}""");
        Assert.Equal(200, ok);
        Assert.Equal(18, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Admission_BeyondInflightLimit_Is429WithRetryAfter_AndCountsInMetrics()
    {
        await using var server = await Start(new FrontendOptions { MaxInflightRequests = 1, RetryAfterSeconds = 3 });
        using var http = Stories260KServer.Client(server);
        using var cts = new CancellationTokenSource();
        using var hold = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = HttpJson.Body(Endless) };
        using var holding = await http.SendAsync(hold, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, holding.StatusCode);
        using var rejected = await http.PostAsync("v1/completions", HttpJson.Body(Small));
        Assert.Equal((HttpStatusCode)429, rejected.StatusCode);
        Assert.Equal("3", rejected.Headers.GetValues("Retry-After").Single());
        Assert.Contains("limit of 1 concurrent", await rejected.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await cts.CancelAsync();
        var metrics = await http.GetStringAsync("metrics");
        Assert.Contains("tandem_frontend_rejected_requests_total{model=\"stories260K\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_requests_total{model=\"stories260K\",endpoint=\"completions\",status=\"429\"} 1", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Timeout_NonStreaming_Is504AndFreesTheEngine()
    {
        await using var server = await Start(new FrontendOptions { RequestTimeout = TimeSpan.FromMilliseconds(300) });
        using var http = Stories260KServer.Client(server);
        // 2000 tokens take well over 300 ms even on a fast machine.
        var (status, error) = await HttpJson.PostAsync(http, "v1/completions", """{"model":"stories260K","prompt":"Once","max_tokens":2000,"ignore_eos":true}""");
        Assert.Equal(504, status);
        Assert.Contains("0.3 s", HttpJson.ErrorMessage(error), StringComparison.Ordinal);
        var engine = server.Workers[0].Engine;
        for (var i = 0; i < 100 && engine.GetStats().KvBlocksUsed > 0; i++)
        {
            await Task.Delay(20);
        }
        Assert.Equal(0, engine.GetStats().KvBlocksUsed);
        Assert.Equal(1, engine.GetStats().RequestsCancelled);
    }

    [Fact]
    public async Task Timeout_Streaming_EndsWithAnErrorEventAndDone()
    {
        await using var server = await Start(new FrontendOptions { RequestTimeout = TimeSpan.FromMilliseconds(300) });
        using var http = Stories260KServer.Client(server);
        var (status, events, done) = await HttpJson.StreamAsync(http, "v1/completions", Endless);
        Assert.Equal(200, status);
        Assert.True(done);
        Assert.Equal("timeout", events[^1].GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Drain_HealthTurns503_NewRequests503_InflightOneFinishes()
    {
        await using var server = await Start(new FrontendOptions());
        using var http = Stories260KServer.Client(server);
        var running = HttpJson.StreamAsync(http, "v1/completions", """{"model":"stories260K","prompt":"Once","max_tokens":600,"ignore_eos":true,"stream":true}""");
        while (server.Frontend.InflightRequests == 0)
        {
            await Task.Delay(5);
        }
        var drain = server.Frontend.DrainAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("health")).StatusCode);
        var (status, _) = await HttpJson.PostAsync(http, "v1/completions", Small);
        Assert.Equal(503, status);
        var (runningStatus, events, done) = await running;
        Assert.Equal(200, runningStatus);
        Assert.True(done);
        Assert.Equal("length", events[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(await drain);
    }

    [Fact]
    public async Task Metrics_AfterRequests_CountTokensAndExposeWorkerGauges()
    {
        await using var server = await Start(new FrontendOptions());
        using var http = Stories260KServer.Client(server);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(200, (await HttpJson.PostAsync(http, "v1/completions", """{"model":"stories260K","prompt":"Once upon a time","max_tokens":10,"ignore_eos":true}""")).Status);
        }
        await HttpJson.PostAsync(http, "v1/completions", """{"model":"nope","prompt":"x"}""");
        var text = await http.GetStringAsync("metrics");
        Assert.Contains("tandem_frontend_requests_total{model=\"stories260K\",endpoint=\"completions\",status=\"200\"} 3", text, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_requests_total{model=\"unknown\",endpoint=\"completions\",status=\"404\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_output_tokens_total{model=\"stories260K\"} 30", text, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_input_tokens_total{model=\"stories260K\"} 15", text, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_time_to_first_token_seconds_count{model=\"stories260K\"} 3", text, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_inter_token_latency_seconds_count{model=\"stories260K\"} 27", text, StringComparison.Ordinal);
        Assert.Contains("tandem_frontend_inflight_requests{model=\"stories260K\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("tandem_worker_kv_cache_usage_ratio{worker=\"worker-0\",model=\"stories260K\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("tandem_worker_kv_cache_hit_ratio{worker=\"worker-0\",model=\"stories260K\"}", text, StringComparison.Ordinal);
        Assert.Contains("vllm:num_requests_running{worker=\"worker-0\",model_name=\"stories260K\"} 0", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Health_WithNoWorkers_Is503()
    {
        var discovery = new Tandem.Runtime.InMemoryDiscovery();
        await using var frontend = new FrontendServer(new FrontendOptions { Port = 0 }, new Models.ModelCatalog(), discovery, new Tandem.Runtime.InProcessRequestPlane(), Tandem.Routing.RoutingPolicies.Create("round-robin"));
        await frontend.StartAsync(TestContext.Current.CancellationToken);
        using var http = new HttpClient { BaseAddress = frontend.Url };
        using var health = await http.GetAsync("health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        var body = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("unavailable", body.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("live")).StatusCode);
    }
}
