using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Orchestrator.Backends;
using Tandem.Orchestrator.Metadata;
using Tandem.Orchestrator.Proxy;

namespace Tandem.Orchestrator;

/// <summary>
/// `tandem disagg`: a TensorRT-LLM compatible disaggregated server. It serves the OpenAI API (<c>/v1/completions</c>,
/// <c>/v1/chat/completions</c>, <c>/v1/models</c>, <c>/health</c>, <c>/metrics</c>) and runs each request as a context
/// leg and a generation leg on the servers of its configuration file (or those registered in the metadata server),
/// checking their health in the background.
/// </summary>
public sealed partial class OrchestratorServer : IAsyncDisposable
{
    private readonly OrchestratorOptions _options;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly HttpClient _client;
    private readonly DisaggProxy _proxy;
    private readonly IServerRegistry? _registry;
    private readonly CancellationTokenSource _stop = new();
    private Task _background = Task.CompletedTask;
    private WebApplication? _app;

    public OrchestratorServer(OrchestratorOptions options, IServerRegistry? registry = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.Metadata is not null && registry is null)
        {
            throw new ArgumentException("metadata-server mode needs a server registry");
        }
        _options = options;
        _registry = registry;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger("Tandem.Orchestrator");
        Context = ServerPool.FromConfig("context", options.Config.ContextServers);
        Generation = ServerPool.FromConfig("generation", options.Config.GenerationServers);
        _client = new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            MaxConnectionsPerServer = 1024,
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _proxy = new DisaggProxy(Context, Generation, options, _client, _loggerFactory.CreateLogger("Tandem.Orchestrator.Requests"));
    }

    public ServerPool Context { get; }

    public ServerPool Generation { get; }

    /// <summary>The bound address (after <see cref="StartAsync"/>).</summary>
    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        foreach (var warning in _options.Config.Warnings)
        {
            Log.ConfigWarning(_logger, warning);
        }
        foreach (var warning in _options.Metadata?.Warnings ?? [])
        {
            Log.ConfigWarning(_logger, warning);
        }
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(_loggerFactory);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.Services.AddRoutingCore();
        var port = _options.Port ?? _options.Config.Port;
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = _options.MaxRequestBodyBytes;
            var host = _options.Config.Hostname;
            if (host is "localhost")
            {
                k.ListenLocalhost(port);
            }
            else if (host is "0.0.0.0" or "*" or "::")
            {
                k.ListenAnyIP(port);
            }
            else
            {
                k.Listen(IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host)[0], port);
            }
        });
        var app = builder.Build();
        app.MapPost("/v1/completions", http => _proxy.HandleAsync(http, "v1/completions"));
        app.MapPost("/v1/chat/completions", http => _proxy.HandleAsync(http, "v1/chat/completions"));
        app.MapGet("/v1/models", ModelsAsync);
        app.MapGet("/health", HealthAsync);
        app.MapGet("/metrics", MetricsAsync);
        app.MapFallback(http => OpenAiErrors.WriteAsync(http, 404, $"no route for {http.Request.Method} {http.Request.Path}", "not_found_error"));
        if (_registry is not null)
        {
            // Servers already registered are known before the first request.
            await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
        _background = Task.Run(() => BackgroundAsync(_stop.Token), CancellationToken.None);
        Log.Listening(_logger, Url.ToString(), Describe(Context), Describe(Generation));
    }

    private static string Describe(ServerPool pool) =>
        $"{pool.Servers.Count} ({pool.Router.Name}){(pool.Servers.Count > 0 ? ": " + string.Join(", ", pool.Servers.Select(s => s.Name)) : "")}";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _background.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        if (_app is { } app)
        {
            _app = null;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await app.StopAsync(timeout.Token).ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
        }
        _client.Dispose();
        _stop.Dispose();
    }

    private async Task BackgroundAsync(CancellationToken ct)
    {
        var interval = _options.Metadata?.RefreshInterval ?? _options.HealthCheckInterval;
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(interval, ct).ConfigureAwait(false);
            try
            {
                if (_registry is not null)
                {
                    await RefreshAsync(ct).ConfigureAwait(false);
                }
                await CheckHealthAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                Log.BackgroundFailed(_logger, e.Message);
            }
        }
    }

    /// <summary>Metadata mode: adds servers that registered (once their /health answers) and removes those whose key is gone.</summary>
    internal async Task RefreshAsync(CancellationToken ct)
    {
        IReadOnlyList<KeyValuePair<string, byte[]>> entries;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(_options.Metadata?.HealthCheckTimeout ?? _options.HealthCheckTimeout);
            entries = await _registry!.ListAsync(timeout.Token).ConfigureAwait(false);
        }
        var records = entries.Select(e => ServerRecord.TryDecode(e.Key, e.Value)).OfType<ServerRecord>().ToList();
        var keys = records.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var pool in new[] { Context, Generation })
        {
            foreach (var server in pool.Servers)
            {
                if (server.MetadataKey is { } key && !keys.Contains(key) && pool.Remove(server))
                {
                    Log.Removed(_logger, server.Name);
                }
            }
        }
        foreach (var record in records)
        {
            var pool = record.IsContext ? Context : Generation;
            if (pool.Servers.Any(s => s.Url == record.Url))
            {
                continue;
            }
            if (await ProbeAsync(record.Url, ct).ConfigureAwait(false))
            {
                pool.Add(record.Url, record.Key);
                Log.Added(_logger, record.Url.GetLeftPart(UriPartial.Authority), pool.Name);
            }
        }
    }

    /// <summary>
    /// One round of health checks. Two failures in a row take a server out of rotation; a server that registered itself
    /// is then removed and its key deleted. A passing check puts a server back.
    /// </summary>
    internal async Task CheckHealthAsync(CancellationToken ct)
    {
        var checks = new List<Task>();
        foreach (var pool in new[] { Context, Generation })
        {
            foreach (var server in pool.Servers)
            {
                checks.Add(CheckAsync(pool, server, ct));
            }
        }
        await Task.WhenAll(checks).ConfigureAwait(false);
    }

    private async Task CheckAsync(ServerPool pool, BackendServer server, CancellationToken ct)
    {
        if (await ProbeAsync(server.Url, ct).ConfigureAwait(false))
        {
            if (!server.Healthy)
            {
                Log.BackInRotation(_logger, server.Name);
            }
            server.ReportHealthy();
            return;
        }
        var failures = server.ReportUnhealthy();
        if (failures < 2)
        {
            return;
        }
        if (server.MetadataKey is { } key && _registry is not null)
        {
            if (pool.Remove(server))
            {
                Log.Removed(_logger, server.Name);
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(_options.Metadata!.HealthCheckTimeout);
                    await _registry.DeleteAsync(key, timeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Log.BackgroundFailed(_logger, $"could not delete {key}: {e.Message}");
                }
            }
        }
        else if (failures == 2)
        {
            Log.OutOfRotation(_logger, server.Name);
        }
    }

    private async Task<bool> ProbeAsync(Uri url, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.Metadata?.HealthCheckTimeout ?? _options.HealthCheckTimeout);
        try
        {
            using var response = await _client.GetAsync(new Uri(url, "health"), timeout.Token).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return false;
        }
    }

    private async Task ModelsAsync(HttpContext http)
    {
        foreach (var server in Generation.Servers.Where(s => s.Healthy).Take(2))
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
                timeout.CancelAfter(_options.HealthCheckTimeout);
                using var response = await _client.GetAsync(new Uri(server.Url, "v1/models"), timeout.Token).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    http.Response.ContentType = "application/json";
                    await http.Response.WriteAsync(await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false), http.RequestAborted).ConfigureAwait(false);
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !http.RequestAborted.IsCancellationRequested))
            {
                server.ReportUnreachable();
            }
        }
        if (_options.Config.Model is { } model)
        {
            var list = new JsonObject
            {
                ["object"] = "list",
                ["data"] = new JsonArray(new JsonObject { ["id"] = model, ["object"] = "model", ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(), ["owned_by"] = "tandem" }),
            };
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(list.ToJsonString(), http.RequestAborted).ConfigureAwait(false);
            return;
        }
        await OpenAiErrors.WriteAsync(http, 503, "no generation server answered /v1/models", "service_unavailable").ConfigureAwait(false);
    }

    private async Task HealthAsync(HttpContext http)
    {
        var healthy = Generation.HealthyCount > 0;
        http.Response.StatusCode = healthy ? 200 : 503;
        http.Response.ContentType = "application/json";
        var body = new JsonObject
        {
            ["status"] = healthy ? "healthy" : "unavailable",
            ["context_servers"] = Servers(Context),
            ["generation_servers"] = Servers(Generation),
        };
        await http.Response.WriteAsync(body.ToJsonString(), http.RequestAborted).ConfigureAwait(false);
    }

    private static JsonArray Servers(ServerPool pool) =>
        [.. pool.Servers.Select(s => (JsonNode)new JsonObject { ["url"] = s.Name, ["healthy"] = s.Healthy, ["inflight"] = s.Inflight })];

    private async Task MetricsAsync(HttpContext http)
    {
        var sb = new StringBuilder();
        void Counter(string name, string help, long value)
        {
            sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        }
        Counter("tandem_orchestrator_context_legs_total", "Context legs answered by a context server.", Interlocked.Read(ref _proxy.ContextLegs));
        Counter("tandem_orchestrator_context_skipped_total", "Requests sent straight to a generation server (short prompt or no context servers).", Interlocked.Read(ref _proxy.ContextSkipped));
        Counter("tandem_orchestrator_context_fallbacks_total", "Requests whose context leg found no server; the generation server did the whole request.", Interlocked.Read(ref _proxy.ContextFallbacks));
        Counter("tandem_orchestrator_retries_total", "Legs retried on another server.", Interlocked.Read(ref _proxy.Retries));
        sb.Append("# HELP tandem_orchestrator_healthy_servers Servers in rotation.\n# TYPE tandem_orchestrator_healthy_servers gauge\n");
        sb.Append(CultureInfo.InvariantCulture, $"tandem_orchestrator_healthy_servers{{pool=\"context\"}} {Context.HealthyCount}\n");
        sb.Append(CultureInfo.InvariantCulture, $"tandem_orchestrator_healthy_servers{{pool=\"generation\"}} {Generation.HealthyCount}\n");
        http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await http.Response.WriteAsync(sb.ToString(), http.RequestAborted).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "disaggregated server listening on {Url}; context servers {Context}; generation servers {Generation}")]
        public static partial void Listening(ILogger logger, string url, string context, string generation);

        [LoggerMessage(2, LogLevel.Warning, "{Warning}")]
        public static partial void ConfigWarning(ILogger logger, string warning);

        [LoggerMessage(3, LogLevel.Information, "Server {Url} is removed")]
        public static partial void Removed(ILogger logger, string url);

        [LoggerMessage(4, LogLevel.Information, "Server {Url} is added as a {Pool} server")]
        public static partial void Added(ILogger logger, string url, string pool);

        [LoggerMessage(5, LogLevel.Warning, "Server {Url} failed two health checks and is out of rotation")]
        public static partial void OutOfRotation(ILogger logger, string url);

        [LoggerMessage(6, LogLevel.Information, "Server {Url} passed a health check and is back in rotation")]
        public static partial void BackInRotation(ILogger logger, string url);

        [LoggerMessage(7, LogLevel.Warning, "server list or health checks failed: {Message}")]
        public static partial void BackgroundFailed(ILogger logger, string message);
    }
}
