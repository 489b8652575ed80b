using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Tandem.Bench.Tests;

/// <summary>How the stub answers one request.</summary>
public sealed record StubScript
{
    /// <summary>Delay before the first content chunk.</summary>
    public TimeSpan FirstToken { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Delay between content chunks.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Content chunks to send (null = max_tokens from the request).</summary>
    public int? Chunks { get; init; }

    /// <summary>Tokens each chunk stands for in the usage report.</summary>
    public int TokensPerChunk { get; init; } = 1;

    public bool SendUsage { get; init; } = true;

    public int? Status { get; init; }

    /// <summary>Send an {"error":...} event after this many content chunks.</summary>
    public int? ErrorAfter { get; init; }

    /// <summary>Close the stream without [DONE] after this many content chunks.</summary>
    public int? TruncateAfter { get; init; }

    /// <summary>Send ": ping" comments between chunks.</summary>
    public bool KeepAlives { get; init; }
}

/// <summary>An OpenAI-compatible stub on 127.0.0.1 (Kestrel, port 0) that streams a scripted token schedule.</summary>
public sealed class StubOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _active;
    private int _maxActive;

    public ConcurrentQueue<JsonElement> Bodies { get; } = new();

    public ConcurrentQueue<string> AuthorizationHeaders { get; } = new();

    public Func<JsonElement, int, StubScript> Script { get; set; } = (_, _) => new StubScript();

    public Uri Url { get; private set; } = null!;

    public int MaxActive => Volatile.Read(ref _maxActive);

    private int _count;

    private StubOpenAiServer(WebApplication app) => _app = app;

    public static async Task<StubOpenAiServer> StartAsync(Func<JsonElement, int, StubScript>? script = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new StubOpenAiServer(app);
        if (script is not null)
        {
            server.Script = script;
        }
        app.MapPost("/v1/chat/completions", context => server.HandleAsync(context, chat: true));
        app.MapPost("/v1/completions", context => server.HandleAsync(context, chat: false));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Url = new Uri(address);
        return server;
    }

    private async Task HandleAsync(HttpContext context, bool chat)
    {
        var active = Interlocked.Increment(ref _active);
        InterlockedMax(ref _maxActive, active);
        try
        {
            var aborted = context.RequestAborted;
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: aborted);
            var body = document.RootElement.Clone();
            Bodies.Enqueue(body);
            AuthorizationHeaders.Enqueue(context.Request.Headers.Authorization.ToString());
            var script = Script(body, Interlocked.Increment(ref _count) - 1);
            if (script.Status is { } status)
            {
                context.Response.StatusCode = status;
                await context.Response.WriteAsync("{\"error\":{\"message\":\"scripted failure\"}}", aborted);
                return;
            }
            var chunks = script.Chunks ?? body.GetProperty("max_tokens").GetInt32();
            var stream = body.TryGetProperty("stream", out var s) && s.GetBoolean();
            var prompt = body.TryGetProperty("prompt", out var p) && p.ValueKind == JsonValueKind.Array ? p.GetArrayLength() : 7;
            if (!stream)
            {
                await Task.Delay(script.FirstToken + (script.Interval * Math.Max(0, chunks - 1)), aborted);
                context.Response.ContentType = "application/json";
                var text = string.Concat(Enumerable.Repeat("tok ", chunks));
                var choice = chat ? $"\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}}" : $"\"text\":\"{text}\"";
                await context.Response.WriteAsync($"{{\"id\":\"x\",\"choices\":[{{\"index\":0,{choice},\"finish_reason\":\"length\"}}],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{chunks * script.TokensPerChunk}}}}}", aborted);
                return;
            }
            context.Response.ContentType = "text/event-stream";
            if (chat)
            {
                await SendAsync(context, "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}", aborted);
            }
            await Task.Delay(script.FirstToken, aborted);
            for (var i = 0; i < chunks; i++)
            {
                if (i > 0)
                {
                    await Task.Delay(script.Interval, aborted);
                }
                if (script.ErrorAfter == i)
                {
                    await SendAsync(context, "{\"error\":{\"message\":\"scripted mid-stream failure\",\"code\":500}}", aborted);
                    return;
                }
                if (script.TruncateAfter == i)
                {
                    return;
                }
                if (script.KeepAlives)
                {
                    await context.Response.WriteAsync(": ping\r\n\r\n", aborted);
                }
                var last = i == chunks - 1 ? "\"length\"" : "null";
                var delta = chat ? "\"delta\":{\"content\":\"tok \"}" : "\"text\":\"tok \"";
                await SendAsync(context, $"{{\"id\":\"x\",\"choices\":[{{\"index\":0,{delta},\"finish_reason\":{last}}}]}}", aborted);
            }
            if (script.SendUsage)
            {
                await SendAsync(context, $"{{\"id\":\"x\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{chunks * script.TokensPerChunk}}}}}", aborted);
            }
            await context.Response.WriteAsync("data: [DONE]\n\n", aborted);
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
        finally
        {
            Interlocked.Decrement(ref _active);
        }
    }

    private static async Task SendAsync(HttpContext context, string json, CancellationToken cancellationToken)
    {
        await context.Response.WriteAsync("data: " + json + "\n\n", Encoding.UTF8, cancellationToken);
        await context.Response.Body.FlushAsync(cancellationToken);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
