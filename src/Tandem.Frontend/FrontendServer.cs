using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;
using Tandem.Frontend.Endpoints;
using Tandem.Frontend.Metrics;
using Tandem.Frontend.Models;
using Tandem.Frontend.OpenAi;
using Tandem.Frontend.Processing;
using Tandem.Routing;

namespace Tandem.Frontend;

/// <summary>
/// The OpenAI-compatible HTTP frontend (Kestrel): <c>/v1/completions</c>, <c>/v1/chat/completions</c>,
/// <c>/v1/models</c>, <c>/health</c>, <c>/live</c>, <c>/metrics</c>. It pre-processes requests and sends them through the
/// router and the request plane to workers found by discovery; the same code serves in-process and remote workers.
/// </summary>
public sealed partial class FrontendServer : IAsyncDisposable
{
    private readonly FrontendOptions _options;
    private readonly ModelCatalog _catalog;
    private readonly IDiscovery _discovery;
    private readonly IRequestPlane _plane;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly AdmissionControl _admission;
    private readonly CompletionsHandler _completions;
    private WebApplication? _app;

    public FrontendServer(FrontendOptions options, ModelCatalog catalog, IDiscovery discovery, IRequestPlane plane, IRoutingPolicy policy, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _catalog = catalog ?? throw new ArgumentNullException(nameof(catalog));
        _discovery = discovery ?? throw new ArgumentNullException(nameof(discovery));
        _plane = plane ?? throw new ArgumentNullException(nameof(plane));
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger("Tandem.Frontend");
        Router = new WorkerRouter(discovery, policy);
        Metrics = new FrontendMetrics();
        Metrics.Registry.AddBeforeCollectCallback(CollectWorkerStatsAsync);
        _admission = new AdmissionControl(options.MaxInflightRequests);
        _completions = new CompletionsHandler(catalog, discovery, new WorkerDispatcher(Router, plane, options), _admission, Metrics, options, _loggerFactory.CreateLogger("Tandem.Frontend.Requests"));
    }

    public FrontendMetrics Metrics { get; }

    public WorkerRouter Router { get; }

    /// <summary>The bound address, e.g. http://127.0.0.1:8000 (available after <see cref="StartAsync"/>).</summary>
    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    /// <summary>Requests admitted and not finished.</summary>
    public int InflightRequests => _admission.Inflight;

    public bool Draining => _completions.Draining;

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(_loggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = _options.MaxRequestBodyBytes;
            Listen(k, _options.Host, _options.Port);
        });
        var app = builder.Build();
        app.Use(GuardAsync);
        app.MapPost("/v1/completions", http => _completions.HandleAsync(http, ApiEndpoint.Completions));
        app.MapPost("/v1/chat/completions", http => _completions.HandleAsync(http, ApiEndpoint.ChatCompletions));
        app.MapGet("/v1/models", ListModelsAsync);
        app.MapGet("/v1/models/{**id}", GetModelAsync);
        app.MapGet("/health", HealthAsync);
        app.MapGet("/live", http => WriteJsonAsync(http, 200, w => w.WriteString("status", "alive")));
        app.MapGet("/metrics", MetricsAsync);
        app.MapFallback(http => CompletionsHandler.WriteErrorAsync(http, OpenAiException.NotFound($"no route for {http.Request.Method} {http.Request.Path}"), 0));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
        Log.Listening(_logger, Url.ToString(), string.Join(", ", _catalog.All.Select(m => m.Name)), Router.Policy.Name);
    }

    /// <summary>
    /// Graceful shutdown, first half: /health turns 503 and new requests get 503, while requests in flight finish.
    /// Returns when none is left or <paramref name="deadline"/> passed (true when all finished).
    /// </summary>
    public async Task<bool> DrainAsync(TimeSpan deadline, CancellationToken cancellationToken = default)
    {
        _completions.Draining = true;
        var until = DateTime.UtcNow + deadline;
        while (_admission.Inflight > 0 && DateTime.UtcNow < until)
        {
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
        return _admission.Inflight == 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await app.StopAsync(stopTimeout.Token).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k, string host, int port)
    {
        if (host is "localhost")
        {
            k.ListenLocalhost(port);
        }
        else if (host is "*" or "0.0.0.0" or "::")
        {
            k.ListenAnyIP(port);
        }
        else if (IPAddress.TryParse(host, out var ip))
        {
            k.Listen(ip, port);
        }
        else
        {
            var resolved = Dns.GetHostAddresses(host);
            if (resolved.Length == 0)
            {
                throw new ArgumentException($"--host '{host}' does not resolve to an address");
            }
            k.Listen(resolved[0], port);
        }
    }

    /// <summary>Request id header, API keys for /v1, and the last line of defence against unexpected errors.</summary>
    private async Task GuardAsync(HttpContext http, Func<Task> next)
    {
        var requestId = RequestIds.Get(http);
        http.Response.Headers[RequestIds.Header] = requestId;
        using var scope = RequestScope(_logger, requestId);
        try
        {
            if (_options.ApiKeys.Count > 0 && http.Request.Path.StartsWithSegments("/v1") && !Authorized(http))
            {
                await CompletionsHandler.WriteErrorAsync(http, OpenAiException.Unauthorized("invalid or missing API key: send 'Authorization: Bearer <key>'"), 0).ConfigureAwait(false);
                return;
            }
            await next().ConfigureAwait(false);
        }
        catch (BadHttpRequestException e)
        {
            var error = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? OpenAiException.TooLarge($"the request body is larger than the limit of {_options.MaxRequestBodyBytes} bytes")
                : new OpenAiException(e.StatusCode, e.Message, "invalid_request_error");
            await CompletionsHandler.WriteErrorAsync(http, error, 0).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (Exception e)
        {
            Log.Unexpected(_logger, requestId, e);
            await CompletionsHandler.WriteErrorAsync(http, new OpenAiException(500, $"internal error (request id {requestId})", "server_error", null, "internal_error"), 0).ConfigureAwait(false);
        }
    }

    private bool Authorized(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var given = System.Text.Encoding.UTF8.GetBytes(header[Bearer.Length..].Trim());
        var ok = false;
        foreach (var key in _options.ApiKeys)
        {
            // Compare every key in constant time, so the answer's timing does not reveal a key's prefix.
            ok |= System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(given, System.Text.Encoding.UTF8.GetBytes(key));
        }
        return ok;
    }

    private IReadOnlyList<ServedModel> ServableModels()
    {
        var live = _discovery.Current.Models.ToHashSet(StringComparer.Ordinal);
        return [.. _catalog.All.Where(m => live.Contains(m.Name))];
    }

    private Task ListModelsAsync(HttpContext http) => WriteJsonAsync(http, 200, w =>
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        foreach (var m in ServableModels())
        {
            w.WriteStartObject();
            WriteModel(w, m);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });

    private Task GetModelAsync(HttpContext http)
    {
        var id = http.Request.RouteValues["id"] as string ?? "";
        var model = ServableModels().FirstOrDefault(m => m.Name == id);
        return model is null
            ? CompletionsHandler.WriteErrorAsync(http, OpenAiException.ModelNotFound(id, ServableModels().Select(m => m.Name)), 0)
            : WriteJsonAsync(http, 200, w => WriteModel(w, model));
    }

    private static void WriteModel(Utf8JsonWriter w, ServedModel m)
    {
        w.WriteString("id", m.Name);
        w.WriteString("object", "model");
        w.WriteNumber("created", m.Created.ToUnixTimeSeconds());
        w.WriteString("owned_by", "tandem");
        w.WriteNumber("max_model_len", m.ContextLength);
    }

    private Task HealthAsync(HttpContext http)
    {
        var snapshot = _discovery.Current;
        var models = ServableModels();
        var healthy = !Draining && models.Count > 0;
        var reason = Draining ? "draining" : models.Count == 0 ? "no decode-capable worker serves a loaded model yet" : null;
        return WriteJsonAsync(http, healthy ? 200 : 503, w =>
        {
            w.WriteString("status", healthy ? "healthy" : "unavailable");
            if (reason is not null)
            {
                w.WriteString("reason", reason);
            }
            w.WriteStartArray("models");
            foreach (var m in models)
            {
                w.WriteStringValue(m.Name);
            }
            w.WriteEndArray();
            w.WriteNumber("workers", snapshot.Instances.Count);
            w.WriteNumber("inflight_requests", _admission.Inflight);
        });
    }

    private async Task MetricsAsync(HttpContext http)
    {
        http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await Metrics.Registry.CollectAndExportAsTextAsync(http.Response.Body, http.RequestAborted).ConfigureAwait(false);
        await http.Response.WriteAsync(Metrics.VllmAliases(), http.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Before each scrape: the workers' own load (KV usage, prefix hit rate, queue) as gauges.</summary>
    private async Task CollectWorkerStatsAsync(CancellationToken cancellationToken)
    {
        var instances = _discovery.Current.Instances;
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var instance in instances)
        {
            live.Add(instance.InstanceId);
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(2));
                var stats = await _plane.GetClient(instance).GetStatsAsync(timeout.Token).ConfigureAwait(false);
                Metrics.SetWorker(instance, stats);
                Router.ReportKvUsage(instance.InstanceId, stats.KvUsage);
            }
            catch (Exception e) when (e is EngineUnavailableException or OperationCanceledException)
            {
                Log.WorkerStatsUnavailable(_logger, instance.InstanceId, e.Message);
            }
        }
        Metrics.RetainWorkers(live);
    }

    private static async Task WriteJsonAsync(HttpContext http, int status, Action<Utf8JsonWriter> body)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
    }

    private static readonly Func<ILogger, string, IDisposable?> RequestScope = LoggerMessage.DefineScope<string>("request {RequestId}");

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "listening on {Url}; models: {Models}; router: {Router}")]
        public static partial void Listening(ILogger logger, string url, string models, string router);

        [LoggerMessage(2, LogLevel.Error, "request {RequestId}: unexpected error")]
        public static partial void Unexpected(ILogger logger, string requestId, Exception exception);

        [LoggerMessage(3, LogLevel.Debug, "worker {Worker}: stats unavailable ({Message})")]
        public static partial void WorkerStatsUnavailable(ILogger logger, string worker, string message);
    }
}
