using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Engine.Tokenizers;
using Tandem.Frontend;
using Tandem.Frontend.Models;
using Tandem.Routing;
using Tandem.Routing.Kv;
using Tandem.Runtime;
using Tandem.Runtime.Etcd;
using Tandem.Runtime.Grpc;

namespace Tandem.Hosting;

/// <summary>Settings of `tandem frontend`.</summary>
public sealed record FrontendProcessOptions
{
    /// <summary>The model whose tokenizer and chat template the frontend uses (weights are mapped, not computed).</summary>
    public required string ModelPath { get; init; }
    public string? ServedModelName { get; init; }

    /// <summary><c>etcd://host:port[,...]</c>: workers found dynamically.</summary>
    public string? Discovery { get; init; }

    /// <summary>A static topology file (<see cref="StaticDiscovery"/>) instead of etcd.</summary>
    public string? ConfigFile { get; init; }

    public string Namespace { get; init; } = "default";
    public string Router { get; init; } = RoutingPolicies.RoundRobin;
    public FrontendOptions Frontend { get; init; } = new();

    /// <summary><c>nats://host:port</c>: the event plane the workers publish KV events and load on (needed by <c>--router kv</c>).</summary>
    public string? Nats { get; init; }

    /// <summary>Settings of the `kv` router.</summary>
    public KvRoutingOptions KvRouting { get; init; } = new();

    /// <summary>Blocks the KV index keeps per worker (0 = unbounded).</summary>
    public int KvIndexMaxBlocksPerWorker { get; init; }
}

/// <summary>`tandem frontend`: the OpenAI API in front of worker processes found through etcd or a static topology.</summary>
public sealed class FrontendProcess : IAsyncDisposable
{
    private static readonly Action<ILogger, string, Exception?> Warn = LoggerMessage.Define<string>(LogLevel.Warning, new EventId(1, "ModelWarning"), "{Message}");

    private readonly List<IAsyncDisposable> _owned = [];
    private ModelArtifact? _model;
    private GrpcRequestPlane? _plane;

    public FrontendServer Server { get; private set; } = null!;

    public IDiscovery Discovery { get; private set; } = null!;

    /// <summary>Keeps the `kv` router's index fed from the workers' KV events on NATS (null for other routers).</summary>
    public KvEventSubscriber? KvEvents { get; private set; }

    public static async Task<FrontendProcess> StartAsync(FrontendProcessOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if ((options.Discovery is null) == (options.ConfigFile is null))
        {
            throw new ArgumentException("give exactly one of --discovery etcd://host:port and --config cluster.yaml");
        }
        var kvRouter = options.Router == RoutingPolicies.Kv;
        if (kvRouter && options.Nats is null)
        {
            throw new ArgumentException("--router kv needs --nats nats://host:port: the workers' KV events reach the router over NATS");
        }
        options.KvRouting.Validate();
        var process = new FrontendProcess();
        try
        {
            // Only the tokenizer and chat template are needed here: no kernels, no engine.
            var artifact = ModelFiles.Open(options.ModelPath);
            process._model = artifact;
            var tokenizer = TokenizerFactory.For(artifact);
            var catalog = new ModelCatalog();
            var logger = loggerFactory.CreateLogger("Tandem.FrontendProcess");
            catalog.Add(ModelSource.Describe(artifact, tokenizer, options.ServedModelName ?? artifact.Name, message => Warn(logger, message, null)));
            if (options.ConfigFile is { } config)
            {
                process.Discovery = StaticDiscovery.Load(config);
            }
            else
            {
                var etcd = new EtcdDiscovery(new EtcdDiscoveryOptions { Endpoints = options.Discovery!, Namespace = options.Namespace }, loggerFactory.CreateLogger("Tandem.Discovery"));
                process._owned.Add(etcd);
                process.Discovery = etcd;
            }
            var plane = new GrpcRequestPlane(loggerFactory: loggerFactory);
            process._plane = plane;
            var index = kvRouter ? new KvIndexer(options.KvIndexMaxBlocksPerWorker) : null;
            process.Server = new FrontendServer(options.Frontend, catalog, process.Discovery, plane, RoutingPolicies.Create(options.Router, options.KvRouting.Seed, index, options.KvRouting), loggerFactory);
            if (options.Nats is { } nats)
            {
                var bus = await EventBusConnect.ConnectAsync(nats, "tandem-frontend", cancellationToken).ConfigureAwait(false);
                process._owned.Add(bus);
                if (index is not null)
                {
                    var subscriber = new KvEventSubscriber(bus, index, process.Discovery, process.Server.Router, options.Namespace);
                    process._owned.Add(subscriber);
                    await subscriber.StartAsync().ConfigureAwait(false);
                    process.KvEvents = subscriber;
                    KvRouterMetrics.Register(process.Server.Metrics.Registry, subscriber, bus);
                }
            }
            await process.Server.StartAsync(cancellationToken).ConfigureAwait(false);
            return process;
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Server is { } server)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync().ConfigureAwait(false);
        }
        _owned.Clear();
        _plane?.Dispose();
        _model?.Dispose();
        _model = null;
    }
}
