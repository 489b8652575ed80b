using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using Tandem.Frontend.Metrics;
using Tandem.Frontend.Models;
using Tandem.Frontend.OpenAi;
using Tandem.Frontend.Processing;

namespace Tandem.Frontend.Endpoints;

/// <summary>
/// <c>POST /v1/completions</c> and <c>POST /v1/chat/completions</c>: parse, pre-process, admit, dispatch to a worker,
/// stream or collect the tokens through detokenization and stop strings, and answer in OpenAI's format.
/// <para>Cancellation: one linked token per request joins the client's disconnect and the request deadline, so either
/// ends the request on the worker (freeing its KV blocks); they are told apart for the answer and the metrics.</para>
/// </summary>
internal sealed partial class CompletionsHandler(
    ModelCatalog catalog,
    IDiscovery discovery,
    WorkerDispatcher dispatcher,
    AdmissionControl admission,
    FrontendMetrics metrics,
    FrontendOptions options,
    ILogger logger)
{
    private const int ClientClosedRequest = 499;
    private static readonly JsonDocumentOptions JsonOptions = new() { MaxDepth = 64 };
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>Set while the server drains: new requests get 503.</summary>
    public bool Draining { get; set; }

    public async Task HandleAsync(HttpContext http, ApiEndpoint endpoint)
    {
        var arrival = Stopwatch.GetTimestamp();
        var requestId = RequestIds.Get(http);
        var endpointLabel = endpoint == ApiEndpoint.ChatCompletions ? "chat_completions" : "completions";
        var modelLabel = "unknown";
        var status = 200;
        try
        {
            if (Draining)
            {
                throw OpenAiException.Unavailable("the server is shutting down; send the request to another instance");
            }
            using var body = await ReadBodyAsync(http).ConfigureAwait(false);
            var parsed = RequestParser.Parse(body.RootElement, endpoint);
            if (!catalog.TryGet(parsed.Model, out var model))
            {
                throw OpenAiException.ModelNotFound(parsed.Model, catalog.All.Select(m => m.Name));
            }
            modelLabel = model.Name;
            if (discovery.Current.DecodeWorkers(model.Name).Count == 0)
            {
                throw OpenAiException.Unavailable($"no worker serves model '{model.Name}' right now");
            }
            var prepared = Preprocessor.Prepare(parsed, model, options, requestId);
            if (!admission.TryEnter())
            {
                metrics.Rejected.WithLabels(modelLabel).Inc();
                throw OpenAiException.Overloaded($"the server is at its limit of {options.MaxInflightRequests} concurrent requests; retry later");
            }
            try
            {
                status = prepared.Parsed.Disaggregated is { Type: DisaggregatedRequestType.ContextOnly }
                    ? await ServeContextOnlyAsync(http, prepared).ConfigureAwait(false)
                    : await ServeAsync(http, prepared, arrival).ConfigureAwait(false);
            }
            finally
            {
                admission.Exit();
            }
        }
        catch (OpenAiException e)
        {
            status = e.Status;
            if (e.Status >= 500)
            {
                Log.RequestFailed(logger, requestId, e.Status, e.Message);
            }
            else
            {
                Log.RequestRejected(logger, requestId, e.Status, e.Message);
            }
            await WriteErrorAsync(http, e, options.RetryAfterSeconds).ConfigureAwait(false);
        }
        finally
        {
            metrics.Requests.WithLabels(modelLabel, endpointLabel, status.ToString(CultureInfo.InvariantCulture)).Inc();
        }
    }

    private static async Task<JsonDocument> ReadBodyAsync(HttpContext http)
    {
        try
        {
            return await JsonDocument.ParseAsync(http.Request.Body, JsonOptions, http.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw OpenAiException.BadRequest($"the request body is not valid JSON: {e.Message}");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw OpenAiException.TooLarge($"the request body is larger than the limit of {http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize} bytes");
        }
    }

    /// <summary>Runs an admitted request; returns the status recorded in metrics (499 when the client went away).</summary>
    private async Task<int> ServeAsync(HttpContext http, PreparedRequest request, long arrival)
    {
        var modelName = request.Model.Name;
        var requestId = request.Generate.RequestId;
        using var deadline = new CancellationTokenSource(options.RequestTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, deadline.Token);
        var ct = linked.Token;
        var run = new RunState(request, arrival);
        metrics.Inflight.WithLabels(modelName).Inc();
        metrics.Queued.WithLabels(modelName).Inc();
        var queued = true;
        Log.RequestStarted(logger, requestId, modelName, request.Generate.PromptTokens.Count, request.Generate.MaxTokens, request.Parsed.Stream);
        try
        {
            ActiveGeneration generation;
            try
            {
                generation = await dispatcher.StartAsync(request, ct).ConfigureAwait(false);
            }
            finally
            {
                metrics.Queued.WithLabels(modelName).Dec();
                queued = false;
            }
            await using (generation.ConfigureAwait(false))
            {
                run.Worker = generation.Worker.InstanceId;
                if (request.Parsed.Stream)
                {
                    await StreamAsync(http, run, generation, ct).ConfigureAwait(false);
                }
                else
                {
                    await CollectAsync(http, run, generation).ConfigureAwait(false);
                }
            }
            Observe(run);
            Log.RequestFinished(logger, requestId, run.Worker ?? "-", run.PromptTokens, run.CompletionTokens, run.CachedTokens, run.FinishReason ?? "-",
                run.TimeToFirstToken * 1000, Stopwatch.GetElapsedTime(arrival).TotalMilliseconds);
            return 200;
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            metrics.Disconnected.WithLabels(modelName).Inc();
            Log.ClientDisconnected(logger, requestId, run.CompletionTokens);
            return ClientClosedRequest;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            var timeout = OpenAiException.Timeout($"the request did not finish within the limit of {options.RequestTimeout.TotalSeconds:0.###} s (after {run.CompletionTokens} tokens)");
            if (!http.Response.HasStarted)
            {
                throw timeout;
            }
            Log.RequestFailed(logger, requestId, timeout.Status, timeout.Message);
            await WriteStreamErrorAsync(http, timeout).ConfigureAwait(false);
            return timeout.Status;
        }
        catch (Exception e) when (e is EngineUnavailableException or EngineOverloadedException or InvalidRequestException)
        {
            var error = e is InvalidRequestException ? OpenAiException.BadRequest(e.Message) : OpenAiException.Unavailable($"the worker failed while serving the request: {e.Message}");
            if (!http.Response.HasStarted)
            {
                throw error;
            }
            Log.RequestFailed(logger, requestId, error.Status, error.Message);
            await WriteStreamErrorAsync(http, error).ConfigureAwait(false);
            return error.Status;
        }
        finally
        {
            if (queued)
            {
                metrics.Queued.WithLabels(modelName).Dec();
            }
            metrics.Inflight.WithLabels(modelName).Dec();
        }
    }

    private static async Task CollectAsync(HttpContext http, RunState run, ActiveGeneration generation)
    {
        var text = new System.Text.StringBuilder(run.Request.PromptText is { } p && run.Request.Parsed.Echo ? p : "");
        var logprobs = run.Request.Parsed.Logprobs ? new List<TokenLogprob>() : null;
        while (await NextPieceAsync(run, generation, logprobs).ConfigureAwait(false) is { } piece)
        {
            text.Append(piece);
        }
        var json = new ResponseJson(run.Request.Parsed.Endpoint, run.Request.Generate.RequestId, run.Request.Model.Name, run.Created);
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            json.WriteCompletion(w, text.ToString(), run.FinishReason!, logprobs, run.Usage);
        }
        http.Response.ContentType = "application/json";
        await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
    }

    private static async Task StreamAsync(HttpContext http, RunState run, ActiveGeneration generation, CancellationToken ct)
    {
        var parsed = run.Request.Parsed;
        var json = new ResponseJson(parsed.Endpoint, run.Request.Generate.RequestId, run.Request.Model.Name, run.Created);
        var includeUsage = parsed.IncludeUsage;
        var response = http.Response;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var buffer = new ArrayBufferWriter<byte>(1024);
        using var w = new Utf8JsonWriter(buffer);

        async Task SendAsync(Action<Utf8JsonWriter> write)
        {
            buffer.ResetWrittenCount();
            w.Reset(buffer);
            write(w);
            await w.FlushAsync(ct).ConfigureAwait(false);
            await response.Body.WriteAsync(DataPrefix, ct).ConfigureAwait(false);
            await response.Body.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
            await response.Body.WriteAsync(EventEnd, ct).ConfigureAwait(false);
            await response.Body.FlushAsync(ct).ConfigureAwait(false);
        }

        var offset = 0;
        if (parsed.Endpoint == ApiEndpoint.ChatCompletions)
        {
            await SendAsync(x => json.WriteChunk(x, "", null, null, 0, role: true, includeUsage)).ConfigureAwait(false);
        }
        else if (parsed.Echo && run.Request.PromptText is { Length: > 0 } prompt)
        {
            await SendAsync(x => json.WriteChunk(x, prompt, null, null, 0, role: false, includeUsage)).ConfigureAwait(false);
            offset = prompt.Length;
        }
        var logprobs = parsed.Logprobs ? new List<TokenLogprob>() : null;
        while (await NextPieceAsync(run, generation, logprobs).ConfigureAwait(false) is { } piece)
        {
            var finish = run.FinishReason;
            if (piece.Length > 0 || logprobs is { Count: > 0 } || finish is not null)
            {
                var lp = logprobs is null ? null : logprobs.ToArray();
                var at = offset;
                await SendAsync(x => json.WriteChunk(x, piece, finish, lp, at, role: false, includeUsage)).ConfigureAwait(false);
                offset += piece.Length;
                logprobs?.Clear();
            }
        }
        if (includeUsage)
        {
            await SendAsync(x => json.WriteUsageChunk(x, run.Usage)).ConfigureAwait(false);
        }
        await response.Body.WriteAsync(Done, ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the next token and returns the text it releases (possibly empty), or null after the last one. Sets
    /// <see cref="RunState.FinishReason"/> together with the last piece, and records per-token latencies.
    /// </summary>
    private static async ValueTask<string?> NextPieceAsync(RunState run, ActiveGeneration generation, List<TokenLogprob>? logprobs)
    {
        if (run.FinishReason is not null)
        {
            return null;
        }
        var next = await generation.NextAsync().ConfigureAwait(false);
        if (next is not { } token)
        {
            throw new EngineUnavailableException("the worker ended the token stream without a finish reason");
        }
        var now = Stopwatch.GetTimestamp();
        if (run.CompletionTokens == 0)
        {
            run.TimeToFirstToken = Stopwatch.GetElapsedTime(run.Arrival, now).TotalSeconds;
            run.CachedTokens = token.CachedPromptTokens;
        }
        else
        {
            run.InterTokenLatencies.Add(Stopwatch.GetElapsedTime(run.LastToken, now).TotalSeconds);
        }
        run.LastToken = now;
        run.CompletionTokens++;
        var piece = run.Output.Push(token.TokenId);
        if (logprobs is not null)
        {
            var tokenizer = run.Request.Model.Tokenizer;
            logprobs.Add(new TokenLogprob(run.Output.LastDecoded, token.Logprob, tokenizer.TokenBytes(token.TokenId).ToArray()));
        }
        if (run.Output.Stopped)
        {
            run.FinishReason = "stop";
        }
        else if (token.Finish is { } finish)
        {
            piece += run.Output.Finish();
            run.FinishReason = finish == FinishReason.Stop ? "stop" : "length";
        }
        return piece;
    }

    private void Observe(RunState run)
    {
        var model = run.Request.Model.Name;
        metrics.TimeToFirstToken.WithLabels(model).Observe(run.TimeToFirstToken);
        var itl = metrics.InterTokenLatency.WithLabels(model);
        foreach (var gap in run.InterTokenLatencies)
        {
            itl.Observe(gap);
        }
        metrics.RequestDuration.WithLabels(model).Observe(Stopwatch.GetElapsedTime(run.Arrival).TotalSeconds);
        metrics.InputSequenceTokens.WithLabels(model).Observe(run.PromptTokens);
        metrics.OutputSequenceTokens.WithLabels(model).Observe(run.CompletionTokens);
        metrics.InputTokens.WithLabels(model).Inc(run.PromptTokens);
        metrics.OutputTokens.WithLabels(model).Inc(run.CompletionTokens);
    }

    internal static async Task WriteErrorAsync(HttpContext http, OpenAiException error, int retryAfterSeconds)
    {
        if (http.Response.HasStarted)
        {
            await WriteStreamErrorAsync(http, error).ConfigureAwait(false);
            return;
        }
        http.Response.StatusCode = error.Status;
        http.Response.ContentType = "application/json";
        if (error.Status is 429 or 503)
        {
            http.Response.Headers.RetryAfter = retryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        }
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            error.WriteTo(w);
        }
        try
        {
            await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The client is gone; nobody reads the error.
        }
    }

    /// <summary>An error after the stream started: an SSE event carrying the error object, then [DONE].</summary>
    private static async Task WriteStreamErrorAsync(HttpContext http, OpenAiException error)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            error.WriteTo(w);
        }
        try
        {
            var body = http.Response.Body;
            await body.WriteAsync(DataPrefix, http.RequestAborted).ConfigureAwait(false);
            await body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
            await body.WriteAsync(EventEnd, http.RequestAborted).ConfigureAwait(false);
            await body.WriteAsync(Done, http.RequestAborted).ConfigureAwait(false);
            await body.FlushAsync(http.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The client is gone.
        }
    }

    /// <summary>Per-request progress shared by the streaming and collecting paths.</summary>
    private sealed class RunState(PreparedRequest request, long arrival)
    {
        public PreparedRequest Request { get; } = request;
        public long Arrival { get; } = arrival;
        public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        public OutputProcessor Output { get; } = new(request.Model.Tokenizer, request.Parsed.Stop);
        public List<double> InterTokenLatencies { get; } = [];
        public string? Worker { get; set; }
        public int PromptTokens => Request.Generate.PromptTokens.Count;
        public int CompletionTokens { get; set; }
        public int CachedTokens { get; set; }
        public double TimeToFirstToken { get; set; }
        public long LastToken { get; set; }
        public string? FinishReason { get; set; }
        public Usage Usage => new(PromptTokens, CompletionTokens, CachedTokens);
    }

    private static partial class Log
    {
        [LoggerMessage(100, LogLevel.Debug, "request {RequestId}: model {Model}, {PromptTokens} prompt tokens, max_tokens {MaxTokens}, stream {Stream}")]
        public static partial void RequestStarted(ILogger logger, string requestId, string model, int promptTokens, int maxTokens, bool stream);

        [LoggerMessage(101, LogLevel.Information, "request {RequestId} on {Worker}: {PromptTokens} prompt ({CachedTokens} cached) + {CompletionTokens} completion tokens, finish {FinishReason}, ttft {TtftMs:F1} ms, total {DurationMs:F1} ms")]
        public static partial void RequestFinished(ILogger logger, string requestId, string worker, int promptTokens, int completionTokens, int cachedTokens, string finishReason, double ttftMs, double durationMs);

        [LoggerMessage(102, LogLevel.Information, "request {RequestId}: client disconnected after {CompletionTokens} tokens; cancelled on the worker")]
        public static partial void ClientDisconnected(ILogger logger, string requestId, int completionTokens);

        [LoggerMessage(103, LogLevel.Information, "request {RequestId} rejected with {Status}: {Message}")]
        public static partial void RequestRejected(ILogger logger, string requestId, int status, string message);

        [LoggerMessage(104, LogLevel.Warning, "request {RequestId} failed with {Status}: {Message}")]
        public static partial void RequestFailed(ILogger logger, string requestId, int status, string message);
    }
}
