using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Tandem.Engine.Serving;
using Tandem.Hosting;

namespace Tandem.Frontend.Tests;

/// <summary>A real `tandem serve` (frontend + one aggregated worker) over stories260K on a loopback port.</summary>
public sealed class Stories260KServer : IAsyncLifetime
{
    public EmbeddedServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public string Model => Server.ModelName;

    public async ValueTask InitializeAsync()
    {
        Server = await StartAsync(new EmbeddedServerOptions
        {
            ModelPath = TestModels.Stories260K,
            Threads = 1,
            Serving = new ServingOptions { NumKvBlocks = 512, MaxNumSeqs = 64 },
            Frontend = new FrontendOptions { Port = 0 },
        });
        Http = Client(Server);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }

    public static Task<EmbeddedServer> StartAsync(EmbeddedServerOptions options) => EmbeddedServer.StartAsync(options);

    public static HttpClient Client(EmbeddedServer server, string? apiKey = null)
    {
        var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
        return http;
    }
}

/// <summary>Small helpers for raw HTTP calls.</summary>
internal static class HttpJson
{
    public static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<(int Status, JsonElement Body)> PostAsync(HttpClient http, string path, string json, CancellationToken ct = default)
    {
        using var response = await http.PostAsync(path, Body(json), ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>The `data:` payloads of an SSE answer, without the final [DONE].</summary>
    public static async Task<(int Status, List<JsonElement> Events, bool Done)> StreamAsync(HttpClient http, string path, string json, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Body(json) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var events = new List<JsonElement>();
        var done = false;
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
        {
            events.Add(JsonDocument.Parse(text).RootElement.Clone());
            return ((int)response.StatusCode, events, false);
        }
        foreach (var block in text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.StartsWith("data: ", block, StringComparison.Ordinal);
            var data = block["data: ".Length..];
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }
            Assert.False(done, "an event after [DONE]");
            events.Add(JsonDocument.Parse(data).RootElement.Clone());
        }
        return ((int)response.StatusCode, events, done);
    }

    public static string ErrorMessage(JsonElement body) => body.GetProperty("error").GetProperty("message").GetString()!;
}
