using System.Text.Json;

namespace Tandem.Frontend.Tests;

/// <summary>Many streaming clients at once, half of them hanging up mid-stream: counts are right and no KV block leaks.</summary>
public class ConcurrencyTests(Stories260KServer fixture) : IClassFixture<Stories260KServer>
{
    private static async Task<int> StreamTokensAsync(HttpClient http, int maxTokens, int cancelAfterChunks, CancellationToken ct)
    {
        var json = $$$"""{"model":"stories260K","prompt":"Once upon a time","max_tokens":{{{maxTokens}}},"ignore_eos":true,"temperature":0.8,"stream":true,"stream_options":{"include_usage":true}}""";
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = HttpJson.Body(json) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        var chunks = 0;
        var usage = -1;
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }
            var e = JsonDocument.Parse(line["data: ".Length..]).RootElement;
            if (e.GetProperty("usage").ValueKind == JsonValueKind.Object)
            {
                usage = e.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            }
            else if (++chunks == cancelAfterChunks)
            {
                return -chunks; // hang up: disposing the response closes the connection mid-stream
            }
        }
        return usage;
    }

    private async Task WaitIdleAsync()
    {
        var engine = fixture.Server.Workers[0].Engine;
        for (var i = 0; i < 200; i++)
        {
            var s = engine.GetStats();
            if (s.Running == 0 && s.Waiting == 0 && s.KvBlocksUsed == 0)
            {
                return;
            }
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        Assert.Fail($"the engine did not return to idle: {engine.GetStats()}");
    }

    [Fact]
    public async Task Stream_64ConcurrentClients_AllGetExactTokenCounts()
    {
        var ct = TestContext.Current.CancellationToken;
        var counts = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(() => StreamTokensAsync(fixture.Http, 20 + i % 7, int.MaxValue, ct), ct)));
        for (var i = 0; i < 64; i++)
        {
            Assert.Equal(20 + i % 7, counts[i]);
        }
        await WaitIdleAsync();
    }

    [Fact]
    public async Task Stream_HalfOf64ClientsDisconnect_OthersFinishAndNoBlocksLeak()
    {
        var ct = TestContext.Current.CancellationToken;
        var engine = fixture.Server.Workers[0].Engine;
        var before = engine.GetStats();
        var disconnectedBefore = fixture.Server.Frontend.Metrics.Disconnected.WithLabels("stories260K").Value;
        // Long generations (1500 tokens each) so that the hang-ups happen while every request is still running.
        var tasks = Enumerable.Range(0, 64).Select(i => Task.Run(() => StreamTokensAsync(fixture.Http, i % 2 == 0 ? 1500 : 30, i % 2 == 0 ? 3 : int.MaxValue, ct), ct)).ToList();
        var results = await Task.WhenAll(tasks);
        for (var i = 0; i < 64; i++)
        {
            Assert.Equal(i % 2 == 0 ? -3 : 30, results[i]);
        }
        await WaitIdleAsync();
        var after = engine.GetStats();
        Assert.Equal(32, after.RequestsCancelled - before.RequestsCancelled);
        Assert.True(after.TokensGenerated - before.TokensGenerated < 32 * 1500 / 2, "cancelled requests kept generating");
        for (var i = 0; i < 100 && fixture.Server.Frontend.Metrics.Disconnected.WithLabels("stories260K").Value - disconnectedBefore < 32; i++)
        {
            await Task.Delay(20, ct);
        }
        Assert.Equal(32, fixture.Server.Frontend.Metrics.Disconnected.WithLabels("stories260K").Value - disconnectedBefore);
        Assert.Equal(0, fixture.Server.Frontend.InflightRequests);
    }
}
