using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tandem.Orchestrator.Backends;

namespace Tandem.Orchestrator.Proxy;

/// <summary>
/// TensorRT-LLM's disaggregated request flow over plain OpenAI HTTP servers:
/// <list type="number">
/// <item>the client's request goes to a context server with <c>disaggregated_params.request_type = "context_only"</c>,
/// <c>stream: false</c> and <c>max_tokens: 1</c>;</item>
/// <item>if the context answer already ends the request (finish reason other than <c>length</c>/<c>not_finished</c>) it
/// is the answer;</item>
/// <item>otherwise the request goes to a generation server with the returned <c>disaggregated_params</c>, now
/// <c>request_type = "generation_only"</c> (completions: the prompt replaced by the returned <c>prompt_token_ids</c>),
/// and its answer (SSE or JSON) is passed through as it arrives.</item>
/// </list>
/// A leg that fails before anything reached the client (connection refused, timeout, 5xx) is retried on another server of
/// its pool. When no context server answers, the generation server does the whole request (no request fails for lack
/// of a context server). Prompts no longer than <c>conditional_disagg_config.max_local_prefill_length</c> skip the
/// context leg.
/// </summary>
internal sealed partial class DisaggProxy(ServerPool context, ServerPool generation, OrchestratorOptions options, HttpClient client, ILogger logger)
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private long _nextId = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() << 16;

    public long ContextLegs;
    public long ContextSkipped;
    public long ContextFallbacks;
    public long Retries;

    public async Task HandleAsync(HttpContext http, string endpoint)
    {
        using var deadline = new CancellationTokenSource(options.RequestTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, deadline.Token);
        var ct = linked.Token;
        var requestId = Interlocked.Increment(ref _nextId);
        try
        {
            var body = await ReadBodyAsync(http, ct).ConfigureAwait(false);
            var chat = endpoint.Contains("chat", StringComparison.Ordinal);
            var stream = body["stream"] switch
            {
                null => false,
                JsonValue v when v.TryGetValue<bool>(out var b) => b,
                _ => throw ProxyException.BadRequest("'stream' must be true or false", "stream"),
            };
            if (body.ContainsKey("disaggregated_params"))
            {
                throw ProxyException.BadRequest("'disaggregated_params' is set by the orchestrator; send the request without it", "disaggregated_params");
            }
            var hint = PromptHint.For(body, chat, options.CountTokens);
            JsonObject? disaggregated = null;
            JsonNode? promptTokenIds = null;
            if (NeedsContext(hint))
            {
                var leg = await ContextLegAsync(body, endpoint, hint, requestId, http, ct).ConfigureAwait(false);
                switch (leg)
                {
                    case ContextResult.Relayed:
                        return;
                    case ContextResult.Final final:
                        await WriteFinalAsync(http, final.Response, chat, stream, ct).ConfigureAwait(false);
                        return;
                    case ContextResult.Handoff handoff:
                        disaggregated = handoff.Params;
                        promptTokenIds = handoff.PromptTokenIds;
                        break;
                    default:
                        Interlocked.Increment(ref ContextFallbacks);
                        Log.ContextUnavailable(logger, requestId);
                        break;
                }
            }
            else
            {
                Interlocked.Increment(ref ContextSkipped);
            }
            var genBody = (JsonObject)body.DeepClone();
            if (disaggregated is not null)
            {
                disaggregated["request_type"] = "generation_only";
                genBody["disaggregated_params"] = disaggregated;
                if (!chat && promptTokenIds is JsonArray { Count: > 0 } ids)
                {
                    genBody["prompt"] = ids.DeepClone();
                }
            }
            await GenerationLegAsync(http, endpoint, genBody, hint, requestId, ct).ConfigureAwait(false);
        }
        catch (ProxyException e)
        {
            await OpenAiErrors.WriteAsync(http, e.Status, e.Message, e.Type, e.Param).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the servers' requests were cancelled with it.
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            await OpenAiErrors.WriteAsync(http, 504, $"the request did not finish within {options.RequestTimeout.TotalSeconds:0.###} s", "timeout").ConfigureAwait(false);
        }
    }

    private bool NeedsContext(RouteHint hint)
    {
        if (context.Servers.Count == 0)
        {
            return false;
        }
        return options.Config.ConditionalDisagg is not { } conditional || hint.PromptTokens > conditional.MaxLocalPrefillLength;
    }

    private static async Task<JsonObject> ReadBodyAsync(HttpContext http, CancellationToken ct)
    {
        JsonNode? node;
        try
        {
            node = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw ProxyException.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new ProxyException(413, "the request body is larger than the limit", "invalid_request_error");
        }
        return node as JsonObject ?? throw ProxyException.BadRequest("the request body must be a JSON object");
    }

    private abstract record ContextResult
    {
        public sealed record Relayed : ContextResult;

        public sealed record Final(JsonObject Response) : ContextResult;

        public sealed record Handoff(JsonObject Params, JsonNode? PromptTokenIds) : ContextResult;

        public sealed record Unavailable : ContextResult;
    }

    private async Task<ContextResult> ContextLegAsync(JsonObject body, string endpoint, RouteHint hint, long requestId, HttpContext http, CancellationToken ct)
    {
        var ctxBody = (JsonObject)body.DeepClone();
        ctxBody["disaggregated_params"] = new JsonObject { ["request_type"] = "context_only", ["disagg_request_id"] = requestId };
        ctxBody["stream"] = false;
        ctxBody.Remove("stream_options");
        ctxBody["max_tokens"] = 1;
        if (ctxBody.ContainsKey("max_completion_tokens"))
        {
            ctxBody["max_completion_tokens"] = 1;
        }
        if (ctxBody["min_tokens"] is JsonValue min && min.TryGetValue<long>(out var minTokens) && minTokens > 1)
        {
            // One token is asked for; a larger minimum still means "no end token first", which min_tokens 1 keeps.
            ctxBody["min_tokens"] = 1;
        }
        var payload = JsonSerializer.SerializeToUtf8Bytes(ctxBody);
        foreach (var server in Candidates(context, hint, []))
        {
            try
            {
                using var request = NewRequest(server, endpoint, payload, http);
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
                var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                if (IsServerError(status))
                {
                    ServerFailed(server, status, text, "context", requestId);
                    continue;
                }
                if (status >= 400)
                {
                    // The request itself is wrong: the client gets the server's answer.
                    await RelayAsync(http, response, text, ct).ConfigureAwait(false);
                    return new ContextResult.Relayed();
                }
                Interlocked.Increment(ref ContextLegs);
                if (JsonNode.Parse(text) is not JsonObject answer || answer["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice)
                {
                    Log.LegFailed(logger, requestId, "context", server.Name, "the answer has no choices");
                    continue;
                }
                var finish = (choice["finish_reason"] as JsonValue)?.ToString();
                if (finish is not ("length" or "not_finished"))
                {
                    return new ContextResult.Final(answer);
                }
                if (choice["disaggregated_params"] is not JsonObject disaggregated)
                {
                    Log.LegFailed(logger, requestId, "context", server.Name, "the answer carries no disaggregated_params (not a context server?)");
                    continue;
                }
                return new ContextResult.Handoff((JsonObject)disaggregated.DeepClone(), answer["prompt_token_ids"]?.DeepClone());
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                Log.LegFailed(logger, requestId, "context", server.Name, e.Message);
                server.ReportUnreachable();
            }
            catch (JsonException e)
            {
                Log.LegFailed(logger, requestId, "context", server.Name, $"invalid JSON: {e.Message}");
            }
        }
        return new ContextResult.Unavailable();
    }

    /// <summary>
    /// The servers of <paramref name="pool"/> one leg tries in turn: the pool's pick among those not tried yet, at most
    /// <c>max_retries + 1</c> (at least 2). Each counts as in flight on its server while the caller works with it; a
    /// retry is counted when a second server is taken. <paramref name="tried"/> collects them (for error messages).
    /// </summary>
    private IEnumerable<BackendServer> Candidates(ServerPool pool, RouteHint hint, List<BackendServer> tried)
    {
        var attempts = Math.Max(options.Config.MaxRetries + 1, 2);
        for (var attempt = 0; attempt < attempts && pool.Pick(hint, tried) is { } server; attempt++)
        {
            if (attempt > 0)
            {
                Interlocked.Increment(ref Retries);
            }
            tried.Add(server);
            server.Enter(hint.PromptTokens);
            try
            {
                yield return server;
            }
            finally
            {
                server.Exit(hint.PromptTokens);
            }
        }
    }

    /// <summary>A server error (5xx) or overload (429): the leg tries another server.</summary>
    private static bool IsServerError(int status) => status >= 500 || status == 429;

    /// <summary>Logs a server error; on 502/503 the server is taken out of rotation until a health check finds it back.</summary>
    private void ServerFailed(BackendServer server, int status, string text, string leg, long requestId)
    {
        Log.LegFailed(logger, requestId, leg, server.Name, $"status {status}: {Truncate(text)}");
        if (status is 502 or 503)
        {
            server.ReportUnreachable();
        }
    }

    private async Task GenerationLegAsync(HttpContext http, string endpoint, JsonObject body, RouteHint hint, long requestId, CancellationToken ct)
    {
        var payload = JsonSerializer.SerializeToUtf8Bytes(body);
        var tried = new List<BackendServer>();
        (int Status, string Text)? lastError = null;
        foreach (var server in Candidates(generation, hint, tried))
        {
            try
            {
                using var request = NewRequest(server, endpoint, payload, http);
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                if (IsServerError(status))
                {
                    var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                    ServerFailed(server, status, text, "generation", requestId);
                    lastError = (status, text);
                    continue;
                }
                await PipeAsync(http, response, ct).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (!http.Response.HasStarted && (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested)))
            {
                Log.LegFailed(logger, requestId, "generation", server.Name, e.Message);
                server.ReportUnreachable();
            }
            catch (Exception e) when (http.Response.HasStarted && (e is HttpRequestException or IOException) && !ct.IsCancellationRequested)
            {
                // Tokens already reached the client: the request cannot move; it ends with an error event.
                Log.LegFailed(logger, requestId, "generation", server.Name, $"failed mid-stream: {e.Message}");
                server.ReportUnreachable();
                await OpenAiErrors.WriteAsync(http, 503, $"the generation server failed while streaming: {e.Message}", "service_unavailable").ConfigureAwait(false);
                return;
            }
        }
        if (lastError is { } error && error.Text.Length > 0 && error.Text.TrimStart().StartsWith('{'))
        {
            http.Response.StatusCode = error.Status;
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(error.Text, ct).ConfigureAwait(false);
            return;
        }
        throw ProxyException.Unavailable(generation.Servers.Count == 0
            ? "no generation server is registered"
            : $"no generation server could take the request (tried {string.Join(", ", tried.Select(s => s.Name))})");
    }

    private static HttpRequestMessage NewRequest(BackendServer server, string endpoint, byte[] payload, HttpContext http)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Url, endpoint))
        {
            Content = new ByteArrayContent(payload) { Headers = { ContentType = Json } },
            Version = HttpVersion.Version11,
        };
        if (http.Request.Headers.Authorization is { Count: > 0 } auth)
        {
            request.Headers.TryAddWithoutValidation("Authorization", auth.ToString());
        }
        if (http.Request.Headers["X-Request-Id"] is { Count: > 0 } id)
        {
            request.Headers.TryAddWithoutValidation("X-Request-Id", id.ToString());
        }
        return request;
    }

    /// <summary>Streams the server's answer to the client as it arrives (SSE events are flushed one by one).</summary>
    private static async Task PipeAsync(HttpContext http, HttpResponseMessage response, CancellationToken ct)
    {
        http.Response.StatusCode = (int)response.StatusCode;
        http.Response.ContentType = response.Content.Headers.ContentType?.ToString() ?? "application/json";
        var sse = http.Response.ContentType.StartsWith("text/event-stream", StringComparison.Ordinal);
        if (sse)
        {
            http.Response.Headers.CacheControl = "no-cache";
            http.Response.Headers["X-Accel-Buffering"] = "no";
        }
        var source = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (source.ConfigureAwait(false))
        {
            var buffer = new byte[16 * 1024];
            int n;
            while ((n = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await http.Response.Body.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                if (sse)
                {
                    await http.Response.Body.FlushAsync(ct).ConfigureAwait(false);
                }
            }
        }
    }

    private static async Task RelayAsync(HttpContext http, HttpResponseMessage response, string text, CancellationToken ct)
    {
        http.Response.StatusCode = (int)response.StatusCode;
        http.Response.ContentType = response.Content.Headers.ContentType?.ToString() ?? "application/json";
        await http.Response.WriteAsync(text, ct).ConfigureAwait(false);
    }

    /// <summary>The context answer ended the request: answer it (as one SSE chunk when the client streams), without the handoff fields.</summary>
    private static async Task WriteFinalAsync(HttpContext http, JsonObject answer, bool chat, bool stream, CancellationToken ct)
    {
        answer.Remove("prompt_token_ids");
        if (answer["choices"] is JsonArray choices)
        {
            foreach (var c in choices.OfType<JsonObject>())
            {
                c.Remove("disaggregated_params");
            }
        }
        if (!stream)
        {
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(answer.ToJsonString(), ct).ConfigureAwait(false);
            return;
        }
        var chunk = new JsonObject
        {
            ["id"] = answer["id"]?.DeepClone(),
            ["object"] = chat ? "chat.completion.chunk" : "text_completion",
            ["created"] = answer["created"]?.DeepClone(),
            ["model"] = answer["model"]?.DeepClone(),
        };
        var outChoices = new JsonArray();
        foreach (var c in (answer["choices"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var item = new JsonObject { ["index"] = c["index"]?.DeepClone() ?? 0 };
            if (chat)
            {
                item["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = c["message"]?["content"]?.DeepClone() ?? "" };
            }
            else
            {
                item["text"] = c["text"]?.DeepClone() ?? "";
            }
            item["finish_reason"] = c["finish_reason"]?.DeepClone();
            outChoices.Add(item);
        }
        chunk["choices"] = outChoices;
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        var sb = new StringBuilder().Append("data: ").Append(chunk.ToJsonString()).Append("\n\n");
        if (answer["usage"] is { } usage)
        {
            var usageChunk = new JsonObject { ["id"] = chunk["id"]?.DeepClone(), ["object"] = chunk["object"]?.DeepClone(), ["choices"] = new JsonArray(), ["usage"] = usage.DeepClone() };
            sb.Append("data: ").Append(usageChunk.ToJsonString()).Append("\n\n");
        }
        sb.Append("data: [DONE]\n\n");
        await http.Response.WriteAsync(sb.ToString(), ct).ConfigureAwait(false);
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "...";

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Warning, "request {RequestId}: {Leg} leg on {Server} failed: {Reason}")]
        public static partial void LegFailed(ILogger logger, long requestId, string leg, string server, string reason);

        [LoggerMessage(21, LogLevel.Warning, "request {RequestId}: no context server answered; the generation server does the whole request")]
        public static partial void ContextUnavailable(ILogger logger, long requestId);
    }
}
