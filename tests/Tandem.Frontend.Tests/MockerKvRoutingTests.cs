using Tandem.Hosting;
using Tandem.Routing;

namespace Tandem.Frontend.Tests;

/// <summary>`tandem serve --engine mocker --router kv`: mocker workers publish KV events; the router follows the prefix.</summary>
public class MockerKvRoutingTests
{
    private static EmbeddedServerOptions Options(string router) => new()
    {
        Engine = EngineKinds.Mocker,
        Workers = 4,
        Router = router,
        SpeedupRatio = 100,
        KvRouting = new() { Seed = 1 },
        Frontend = new FrontendOptions { Port = 0 },
    };

    private static string Prompt(int seed) => "[" + string.Join(",", Enumerable.Range(0, 300).Select(i => 300 + ((i * 31) + (seed * 7)) % 200)) + "]";

    [Fact]
    public async Task Kv_RepeatedPrefix_GoesToTheWorkerThatCachedIt()
    {
        await using var server = await EmbeddedServer.StartAsync(Options(RoutingPolicies.Kv));
        using var http = Stories260KServer.Client(server);
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal(4, server.Workers.Count);
        Assert.All(server.Workers, w => Assert.Equal(64, w.Instance.KvBlockSize));
        var (status, first) = await HttpJson.PostAsync(http, "/v1/completions", $"{{\"model\":\"tandem-mocker\",\"prompt\":{Prompt(1)},\"max_tokens\":5}}", ct);
        Assert.Equal(200, status);
        Assert.Equal(5, first.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        // The router's index learns of the 4 stored blocks through the event bus.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (server.KvIndex!.BlockCount < 4 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, ct);
        }
        Assert.Equal(4, server.KvIndex.BlockCount);
        for (var i = 0; i < 4; i++)
        {
            var (_, again) = await HttpJson.PostAsync(http, "/v1/completions", $"{{\"model\":\"tandem-mocker\",\"prompt\":{Prompt(1)},\"max_tokens\":5}}", ct);
            Assert.Equal(256, again.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        }
        Assert.Equal(1, server.Workers.Count(w => w.Engine.GetStats().PrefixHitTokens > 0));
    }

    [Fact]
    public async Task RoundRobin_RepeatedPrefix_MissesOnOtherWorkers()
    {
        await using var server = await EmbeddedServer.StartAsync(Options(RoutingPolicies.RoundRobin));
        using var http = Stories260KServer.Client(server);
        var ct = TestContext.Current.CancellationToken;
        Assert.Null(server.KvIndex);
        var cached = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            var (_, r) = await HttpJson.PostAsync(http, "/v1/completions", $"{{\"model\":\"tandem-mocker\",\"prompt\":{Prompt(2)},\"max_tokens\":3}}", ct);
            cached.Add(r.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        }
        Assert.Equal([0, 0, 0, 0], cached);
    }
}
