using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Tandem.Orchestrator.Config;
using Tandem.Orchestrator.Metadata;

namespace Tandem.Orchestrator.Tests;

public sealed class ProtocolTests : IAsyncLifetime
{
    private static readonly HttpClient Client = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly List<IAsyncDisposable> _owned = [];

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var o in Enumerable.Reverse(_owned))
        {
            await o.DisposeAsync();
        }
    }

    private async Task<FakeServer> ServerAsync(Func<JsonObject, HttpContext, Task> handler)
    {
        var s = await FakeServer.StartAsync();
        s.Handler = handler;
        _owned.Add(s);
        return s;
    }

    private async Task<OrchestratorServer> OrchestratorAsync(string yaml, IServerRegistry? registry = null, MetadataConfig? metadata = null)
    {
        var o = new OrchestratorServer(new OrchestratorOptions
        {
            Config = ConfigParser.ParseDisagg(yaml, dynamicServers: metadata is not null),
            Metadata = metadata,
            Port = 0,
            HealthCheckInterval = TimeSpan.FromHours(1),
        }, registry);
        await o.StartAsync();
        _owned.Add(o);
        return o;
    }

    private static string Yaml(IEnumerable<string> context, IEnumerable<string> generation, string extra = "") =>
        $"hostname: 127.0.0.1\nport: 0\n{extra}context_servers:\n  num_instances: {context.Count()}\n  urls: [{string.Join(", ", context.Select(u => $"\"{u}\""))}]\n" +
        $"generation_servers:\n  num_instances: {generation.Count()}\n  urls: [{string.Join(", ", generation.Select(u => $"\"{u}\""))}]\n";

    private static async Task<(HttpStatusCode Status, string Body)> PostAsync(OrchestratorServer o, string path, string json)
    {
        using var response = await Client.PostAsync(new Uri(o.Url, path), new StringContent(json, Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Completions_ContextThenGeneration_CarriesTheHandoffFields()
    {
        var ctx = await ServerAsync(FakeServer.Context());
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([ctx.HostPort], [gen.HostPort]));

        var (status, body) = await PostAsync(o, "v1/completions", """{"model":"m","prompt":"Once upon a time","max_tokens":16,"min_tokens":4,"temperature":0,"stream_options":null}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(" Once upon", JsonNode.Parse(body)!["choices"]![0]!["text"]!.GetValue<string>());
        var c = Assert.Single(ctx.Received);
        Assert.Equal("context_only", c["disaggregated_params"]!["request_type"]!.GetValue<string>());
        Assert.Equal(1, c["max_tokens"]!.GetValue<int>());
        Assert.Equal(1, c["min_tokens"]!.GetValue<int>());
        Assert.False(c["stream"]!.GetValue<bool>());
        Assert.False(c.ContainsKey("stream_options"));
        var g = Assert.Single(gen.Received);
        var p = g["disaggregated_params"]!;
        Assert.Equal("generation_only", p["request_type"]!.GetValue<string>());
        Assert.Equal(7, p["ctx_request_id"]!.GetValue<int>());
        Assert.Equal("b3BhcXVl", p["encoded_opaque_state"]!.GetValue<string>());
        Assert.Equal([42], p["first_gen_tokens"]!.AsArray().Select(x => x!.GetValue<int>()));
        Assert.Equal(c["disaggregated_params"]!["disagg_request_id"]!.GetValue<long>(), p["disagg_request_id"]!.GetValue<long>());
        Assert.Equal([1, 2, 3], g["prompt"]!.AsArray().Select(x => x!.GetValue<int>()));
        Assert.Equal(16, g["max_tokens"]!.GetValue<int>());
        Assert.Equal(4, g["min_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task ChatStreaming_PassesTheGenerationServersEventsThrough()
    {
        var ctx = await ServerAsync(FakeServer.Context());
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([ctx.HostPort], [gen.HostPort]));

        var (status, body) = await PostAsync(o, "v1/chat/completions", """{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("\" Once\"", body, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        var g = Assert.Single(gen.Received);
        Assert.True(g["stream"]!.GetValue<bool>());
        Assert.Equal("hi", g["messages"]![0]!["content"]!.GetValue<string>()); // chat keeps its messages
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ContextAnswerThatEndsTheRequest_IsTheAnswer(bool stream)
    {
        var ctx = await ServerAsync(FakeServer.Context(finish: "stop", text: "."));
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([ctx.HostPort], [gen.HostPort]));

        var (status, body) = await PostAsync(o, "v1/chat/completions", $$"""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":{{(stream ? "true" : "false")}}}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Empty(gen.Received);
        Assert.DoesNotContain("disaggregated_params", body, StringComparison.Ordinal);
        if (stream)
        {
            Assert.StartsWith("data: {", body, StringComparison.Ordinal);
            Assert.Contains("\"delta\":{\"role\":\"assistant\",\"content\":\".\"}", body, StringComparison.Ordinal);
            Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(".", JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task DeadContextServer_IsSkipped_AndWithNoneLeftTheGenerationServerDoesEverything()
    {
        var ctx = await ServerAsync(FakeServer.Context());
        var gen = await ServerAsync(FakeServer.Generation());
        var dead = "127.0.0.1:1";
        var o = await OrchestratorAsync(Yaml([dead, ctx.HostPort], [gen.HostPort]));

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await PostAsync(o, "v1/completions", """{"model":"m","prompt":"x"}""")).Status);
        }
        Assert.Equal(4, ctx.Received.Count);
        Assert.False(o.Context.Servers[0].Healthy);
        Assert.All(gen.Received, g => Assert.Equal("generation_only", g["disaggregated_params"]!["request_type"]!.GetValue<string>()));

        ctx.Handler = (_, http) =>
        {
            http.Response.StatusCode = 503;
            return http.Response.WriteAsync("{\"error\":{\"message\":\"draining\"}}");
        };
        gen.Received.Clear();
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(o, "v1/completions", """{"model":"m","prompt":"x"}""")).Status);
        Assert.False(Assert.Single(gen.Received).ContainsKey("disaggregated_params"));
    }

    [Fact]
    public async Task GenerationServerFailingBeforeAnyByte_IsRetriedOnAnother()
    {
        var ctx = await ServerAsync(FakeServer.Context());
        var busy = await ServerAsync((_, http) =>
        {
            http.Response.StatusCode = 503;
            return http.Response.WriteAsync("{\"error\":{\"message\":\"shutting down\"}}");
        });
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([ctx.HostPort], [busy.HostPort, gen.HostPort]));

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await PostAsync(o, "v1/completions", """{"model":"m","prompt":"x","stream":true}""")).Status);
        }
        Assert.Equal(3, gen.Received.Count);
        Assert.Single(busy.Received); // out of rotation after its 503
    }

    [Fact]
    public async Task ClientErrorFromTheContextServer_IsRelayed()
    {
        var ctx = await ServerAsync((_, http) =>
        {
            http.Response.StatusCode = 400;
            return http.Response.WriteAsync("{\"error\":{\"message\":\"prompt too long\",\"type\":\"invalid_request_error\"}}");
        });
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([ctx.HostPort], [gen.HostPort]));
        var (status, body) = await PostAsync(o, "v1/completions", """{"model":"m","prompt":"x"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("prompt too long", body, StringComparison.Ordinal);
        Assert.Empty(gen.Received);
    }

    [Fact]
    public async Task ConditionalDisaggregation_ShortPromptsSkipTheContextServer()
    {
        var ctx = await ServerAsync(FakeServer.Context());
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([ctx.HostPort], [gen.HostPort], "conditional_disagg_config:\n  max_local_prefill_length: 8\n"));

        Assert.Equal(HttpStatusCode.OK, (await PostAsync(o, "v1/completions", """{"model":"m","prompt":[1,2,3,4,5,6,7,8]}""")).Status);
        Assert.Empty(ctx.Received);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(o, "v1/completions", """{"model":"m","prompt":[1,2,3,4,5,6,7,8,9]}""")).Status);
        Assert.Single(ctx.Received);
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("[1,2]", "must be a JSON object")]
    [InlineData("""{"model":"m","prompt":"x","stream":"yes"}""", "'stream' must be true or false")]
    [InlineData("""{"model":"m","prompt":"x","disaggregated_params":{"request_type":"generation_only"}}""", "set by the orchestrator")]
    public async Task BadRequests_GetOpenAiErrors(string json, string message)
    {
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([], [gen.HostPort]));
        var (status, body) = await PostAsync(o, "v1/completions", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Contains(message, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Empty(gen.Received);
    }

    [Fact]
    public async Task NoGenerationServerUp_Answers503()
    {
        var o = await OrchestratorAsync(Yaml([], ["127.0.0.1:1"]));
        var (status, body) = await PostAsync(o, "v1/completions", """{"model":"m","prompt":"x"}""");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("no generation server could take the request", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelsAndHealth_AreServed()
    {
        var gen = await ServerAsync(FakeServer.Generation());
        var o = await OrchestratorAsync(Yaml([], [gen.HostPort]));
        Assert.Contains("\"fake\"", await Client.GetStringAsync(new Uri(o.Url, "v1/models")), StringComparison.Ordinal);
        using var health = await Client.GetAsync(new Uri(o.Url, "health"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        gen.Healthy = false;
        await o.CheckHealthAsync(CancellationToken.None);
        await o.CheckHealthAsync(CancellationToken.None);
        using var down = await Client.GetAsync(new Uri(o.Url, "health"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
        gen.Healthy = true;
        await o.CheckHealthAsync(CancellationToken.None);
        Assert.True(o.Generation.Servers[0].Healthy);
    }

    [Fact]
    public async Task MetadataMode_AddsRegisteredServers_RemovesDeletedOnesAndDeadOnes()
    {
        var ctx = await ServerAsync(FakeServer.Context());
        var gen = await ServerAsync(FakeServer.Generation());
        var registry = new MemoryRegistry();
        var o = await OrchestratorAsync("hostname: 127.0.0.1\nport: 0\n", registry, new MetadataConfig { RefreshInterval = TimeSpan.FromHours(1), HealthCheckTimeout = TimeSpan.FromSeconds(2) });
        Assert.Empty(o.Generation.Servers);

        registry.Entries["trtllm/ctx0"] = ServerRecord.Encode(ctx.Url.ToString(), "context", "m", "1");
        registry.Entries["trtllm/gen0"] = ServerRecord.Encode(gen.Url.ToString(), "generation", "m", "1");
        registry.Entries["trtllm/other"] = "not json"u8.ToArray();
        await o.RefreshAsync(CancellationToken.None);
        Assert.Single(o.Context.Servers);
        Assert.Single(o.Generation.Servers);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(o, "v1/completions", """{"model":"m","prompt":"x"}""")).Status);
        Assert.Single(ctx.Received);

        registry.Entries.TryRemove("trtllm/ctx0", out _);
        await o.RefreshAsync(CancellationToken.None);
        Assert.Empty(o.Context.Servers);

        gen.Healthy = false;
        await o.CheckHealthAsync(CancellationToken.None);
        Assert.Single(o.Generation.Servers);
        await o.CheckHealthAsync(CancellationToken.None);
        Assert.Empty(o.Generation.Servers);
        Assert.False(registry.Entries.ContainsKey("trtllm/gen0"));
    }

    private sealed class MemoryRegistry : IServerRegistry
    {
        public System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> Entries { get; } = new();

        public Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ListAsync(CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<KeyValuePair<string, byte[]>>>([.. Entries]);

        public Task DeleteAsync(string key, CancellationToken cancellationToken = default)
        {
            Entries.TryRemove(key, out _);
            return Task.CompletedTask;
        }
    }
}
