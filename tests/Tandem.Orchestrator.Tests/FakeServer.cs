using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Tandem.Orchestrator.Tests;

/// <summary>An OpenAI-style server on a loopback port whose answers the test decides; it records what it received.</summary>
internal sealed class FakeServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeServer(WebApplication app)
    {
        _app = app;
    }

    public ConcurrentQueue<JsonObject> Received { get; } = new();

    public Func<JsonObject, HttpContext, Task> Handler { get; set; } = (_, http) => http.Response.WriteAsync("{}");

    public volatile bool Healthy = true;

    public Uri Url { get; private set; } = null!;

    public string HostPort => $"{Url.Host}:{Url.Port}";

    public static async Task<FakeServer> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new FakeServer(app);
        app.MapPost("/v1/{**rest}", async http =>
        {
            var body = (JsonObject)(await JsonNode.ParseAsync(http.Request.Body))!;
            server.Received.Enqueue(body);
            await server.Handler(body, http);
        });
        app.MapGet("/health", http =>
        {
            http.Response.StatusCode = server.Healthy ? 200 : 503;
            return Task.CompletedTask;
        });
        app.MapGet("/v1/models", http => http.Response.WriteAsync("{\"object\":\"list\",\"data\":[{\"id\":\"fake\",\"object\":\"model\"}]}"));
        await app.StartAsync();
        server.Url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
        return server;
    }

    /// <summary>A context server's answer: one token, finish "length", the handoff parameters and the prompt's token ids.</summary>
    public static Func<JsonObject, HttpContext, Task> Context(string finish = "length", string text = " Once") => (body, http) =>
    {
        var chat = http.Request.Path.Value!.Contains("chat", StringComparison.Ordinal);
        var choice = new JsonObject
        {
            ["index"] = 0,
            ["finish_reason"] = finish,
            ["disaggregated_params"] = new JsonObject
            {
                ["request_type"] = "context_only",
                ["first_gen_tokens"] = new JsonArray(42),
                ["ctx_request_id"] = 7,
                ["encoded_opaque_state"] = "b3BhcXVl",
                ["disagg_request_id"] = body["disaggregated_params"]!["disagg_request_id"]!.DeepClone(),
            },
        };
        if (chat)
        {
            choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
        }
        else
        {
            choice["text"] = text;
        }
        var answer = new JsonObject
        {
            ["id"] = "cmpl-ctx",
            ["object"] = chat ? "chat.completion" : "text_completion",
            ["created"] = 1,
            ["model"] = "m",
            ["choices"] = new JsonArray(choice),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 3, ["completion_tokens"] = 1, ["total_tokens"] = 4 },
            ["prompt_token_ids"] = new JsonArray(1, 2, 3),
        };
        http.Response.ContentType = "application/json";
        return http.Response.WriteAsync(answer.ToJsonString());
    };

    /// <summary>A generation server's answer: JSON, or three SSE events when the request streams.</summary>
    public static Func<JsonObject, HttpContext, Task> Generation(string text = " Once upon") => async (body, http) =>
    {
        if (body["stream"]?.GetValue<bool>() == true)
        {
            http.Response.ContentType = "text/event-stream; charset=utf-8";
            await http.Response.WriteAsync("data: {\"choices\":[{\"index\":0,\"text\":\" Once\"}]}\n\n");
            await http.Response.Body.FlushAsync();
            await http.Response.WriteAsync("data: {\"choices\":[{\"index\":0,\"text\":\" upon\",\"finish_reason\":\"length\"}]}\n\n");
            await http.Response.WriteAsync("data: [DONE]\n\n");
            return;
        }
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(new JsonObject
        {
            ["id"] = "cmpl-gen",
            ["object"] = "text_completion",
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["text"] = text, ["finish_reason"] = "length" }),
        }.ToJsonString());
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
