using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Engine.Serving;
using Tandem.Frontend;
using Tandem.Frontend.Models;
using Tandem.Runtime;
using Tandem.Transfer;
using Tandem.Worker;

namespace Tandem.Hosting;

/// <summary>
/// `tandem serve`: the frontend and aggregated workers in one process, wired through in-memory discovery and the
/// in-process request plane — the same interfaces that etcd and the network implement for separate processes.
/// </summary>
public sealed partial class EmbeddedServer : IAsyncDisposable
{
    private readonly List<LoadedModel> _models = [];
    private readonly List<EngineWorker> _workers = [];
    private readonly InMemoryDiscovery _discovery = new();
    private readonly InProcessRequestPlane _plane = new();
    private readonly InMemoryEventBus _bus = new();
    private readonly InProcessKvTransport _transport = new();
    private readonly ILogger _logger;
    private FrontendServer? _frontend;

    private EmbeddedServer(ILoggerFactory loggerFactory)
    {
        _logger = loggerFactory.CreateLogger("Tandem.Serve");
    }

    public FrontendServer Frontend => _frontend ?? throw new InvalidOperationException("not started");

    public Uri Url => Frontend.Url;

    public string ModelName { get; private set; } = "";

    public IReadOnlyList<EngineWorker> Workers => _workers;

    public bool IsDemoModel { get; private set; }

    /// <summary>Loads the model, starts the workers and the frontend; throws on bad settings or model files.</summary>
    public static async Task<EmbeddedServer> StartAsync(EmbeddedServerOptions options, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Workers, 1, "--workers");
        options.Serving.Validate();
        options.Frontend.Validate();
        var (policy, kvIndex) = CreatePolicy(options);
        loggerFactory ??= NullLoggerFactory.Instance;
        var server = new EmbeddedServer(loggerFactory);
        try
        {
            var mocker = IsMocker(options);
            server.IsDemoModel = options.ModelPath is null && !mocker;
            var path = mocker ? "mocker profile " + (options.MockerProfile ?? Engine.Serving.Mocker.MockerProfile.DefaultProfileName) : options.ModelPath ?? ModelSource.EnsureDemoModel();
            var catalog = new ModelCatalog();
            if (mocker)
            {
                server.AddMockerWorkers(options, catalog);
            }
            var disagg = options.Mode == ServeMode.Disaggregated;
            if (disagg)
            {
                ArgumentOutOfRangeException.ThrowIfLessThan(options.PrefillWorkers, 0, "--prefill-workers");
                ArgumentOutOfRangeException.ThrowIfLessThan(options.DecodeWorkers, 1, "--decode-workers");
                options.Disaggregation.Validate();
            }
            var roles = disagg
                ? [.. Enumerable.Repeat(WorkerRole.Prefill, options.PrefillWorkers), .. Enumerable.Repeat(WorkerRole.Decode, options.DecodeWorkers)]
                : Enumerable.Repeat(WorkerRole.Both, options.Workers).ToList();
            var counts = new Dictionary<WorkerRole, int>();
            foreach (var role in mocker ? [] : roles)
            {
                // Each worker maps the file itself (the OS shares the pages) and owns its kernels, engine and KV cache.
                var loaded = LoadedModel.Load(path, threads: options.Threads);
                server._models.Add(loaded);
                if (server._models.Count == 1)
                {
                    server.ModelName = options.ServedModelName ?? (server.IsDemoModel ? ModelSource.DemoModelName : loaded.Artifact.Name);
                    catalog.Add(ModelSource.Describe(loaded, server.ModelName, message => Log.TemplateWarning(server._logger, message)));
                }
                counts[role] = counts.GetValueOrDefault(role) + 1;
                var id = role switch
                {
                    WorkerRole.Prefill => $"prefill-{counts[role] - 1}",
                    WorkerRole.Decode => $"decode-{counts[role] - 1}",
                    _ => $"worker-{counts[role] - 1}",
                };
                var engine = new ServingEngine(loaded.Transformer, loaded.Tokenizer.StopTokenIds, options.Serving);
                var instance = new WorkerInstance
                {
                    InstanceId = id,
                    Role = role,
                    Model = server.ModelName,
                    ModelFingerprint = ModelSource.Fingerprint(loaded),
                    StartedAt = DateTimeOffset.UtcNow,
                };
                var services = disagg
                    ? new WorkerServices
                    {
                        Bus = server._bus,
                        Transports = [server._transport],
                        KvAddress = InProcessKvTransport.Scheme + id,
                        Discovery = server._discovery,
                        Options = options.Disaggregation,
                    }
                    : null;
                var worker = new EngineWorker(engine, instance, services, loggerFactory.CreateLogger("Tandem.Worker." + id));
                if (disagg)
                {
                    server._transport.Register(id, worker.KvAccess);
                }
                worker.Start();
                server._workers.Add(worker);
                server._plane.Add(worker);
                server._discovery.Register(worker.Instance);
            }
            server._frontend = new FrontendServer(options.Frontend, catalog, server._discovery, server._plane, policy, loggerFactory);
            await server._frontend.StartAsync(cancellationToken).ConfigureAwait(false);
            await server.StartKvEventsAsync(kvIndex).ConfigureAwait(false);
            Log.Serving(server._logger, server.ModelName, path, string.Join(", ", server._workers.Select(w => w.Instance.InstanceId)), server._workers[0].Engine.Blocks.NumBlocks, server._workers[0].Engine.BlockSize);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops taking requests, lets those in flight finish (up to <paramref name="deadline"/>), then stops.</summary>
    public async Task ShutdownAsync(TimeSpan deadline)
    {
        if (_frontend is { } frontend)
        {
            var drained = await frontend.DrainAsync(deadline).ConfigureAwait(false);
            Log.Drained(_logger, drained, frontend.InflightRequests);
        }
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_frontend is { } frontend)
        {
            _frontend = null;
            await frontend.DisposeAsync().ConfigureAwait(false);
        }
        await StopKvEventsAsync().ConfigureAwait(false);
        foreach (var w in _workers)
        {
            _discovery.Deregister(w.Instance.InstanceId);
            _plane.Remove(w.Instance.InstanceId);
            _transport.Unregister(InProcessKvTransport.Scheme + w.Instance.InstanceId);
            await w.DisposeAsync().ConfigureAwait(false);
        }
        _workers.Clear();
        foreach (var m in _models)
        {
            m.Dispose();
        }
        _models.Clear();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "serving model {Model} from {Path} with workers {Workers}, {Blocks} KV blocks of {BlockSize} tokens each")]
        public static partial void Serving(ILogger logger, string model, string path, string workers, int blocks, int blockSize);

        [LoggerMessage(3, LogLevel.Warning, "{Message}")]
        public static partial void TemplateWarning(ILogger logger, string message);

        [LoggerMessage(2, LogLevel.Information, "drain finished: all requests done {Drained}, still in flight {Inflight}")]
        public static partial void Drained(ILogger logger, bool drained, int inflight);
    }
}
