using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Frontend;
using Tandem.Frontend.Models;
using Tandem.Orchestrator.Config;
using Tandem.Orchestrator.Metadata;
using Tandem.Routing;
using Tandem.Runtime;
using Tandem.Runtime.Etcd;
using Tandem.Runtime.Grpc;
using Tandem.Worker;

namespace Tandem.Hosting;

/// <summary>TensorRT-LLM's server role of a worker that serves the OpenAI API itself (<c>--server-role</c>).</summary>
public enum ServerRole
{
    Context,
    Generation,
}

/// <summary>`tandem worker --http-port N [--server-role CONTEXT|GENERATION] [--metadata-server-config-file F]`.</summary>
public sealed record WorkerHttpOptions
{
    public int Port { get; init; }
    public ServerRole? ServerRole { get; init; }

    /// <summary>TensorRT-LLM's <c>metadata_config.yml</c>: list this server in etcd under <c>trtllm/{id}</c>.</summary>
    public string? MetadataConfigFile { get; init; }

    public FrontendOptions Frontend { get; init; } = new();
}

/// <summary>
/// The worker's own OpenAI API (a <c>trtllm-serve</c> stand-in): the frontend with this worker as its only worker, so
/// it honours <c>disaggregated_params</c> (context-only keeps the KV under a lease and hands out its address;
/// generation-only pulls it from the context worker named in the opaque state, through this worker's KV transports,
/// and releases the lease over the context worker's request plane).
/// </summary>
public sealed partial class WorkerProcess
{
    private FrontendServer? _http;
    private EtcdKeyValue.LeasedKey? _metadataKey;

    /// <summary>The OpenAI API's address when <see cref="WorkerProcessOptions.Http"/> is set.</summary>
    public Uri? HttpUrl => _http?.Url;

    private async Task StartHttpAsync(WorkerProcessOptions options, LoadedModel loaded, string name, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        if (options.Http is not { } http)
        {
            return;
        }
        var catalog = new ModelCatalog();
        catalog.Add(ModelSource.Describe(loaded, name));
        var self = Worker.Instance with
        {
            Endpoints = new Dictionary<string, string>(Worker.Instance.Endpoints) { ["rpc"] = RpcUrl, ["kv"] = KvAddress },
        };
        var discovery = new InMemoryDiscovery();
        discovery.Register(self);
        var remote = new GrpcRequestPlane(loggerFactory: loggerFactory);
        _owned.Add(new DisposeAction(remote.Dispose));
        var server = new FrontendServer(http.Frontend with { Host = options.Host, Port = http.Port }, catalog, discovery, new LocalFirstPlane(Worker, remote),
            RoutingPolicies.Create(RoutingPolicies.RoundRobin), loggerFactory);
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        _http = server;
        _owned.Add(server);
        if (http.MetadataConfigFile is { } file)
        {
            var metadata = ConfigParser.LoadMetadata(file);
            var role = http.ServerRole ?? throw new ArgumentException("--metadata-server-config-file needs --server-role CONTEXT or GENERATION");
            var store = new EtcdKeyValue(new EtcdDiscoveryOptions { Endpoints = metadata.EtcdEndpoint, Namespace = options.Namespace });
            _owned.Add(new DisposeAction(store.Dispose));
            var url = server.Url.ToString().TrimEnd('/');
            _metadataKey = await store.KeepAsync(ServerRecord.KeyFor(self.InstanceId), ServerRecord.Encode(url, role.ToString(), name, "tandem"),
                loggerFactory.CreateLogger("Tandem.Metadata"), cancellationToken).ConfigureAwait(false);
            _owned.Add(_metadataKey);
            Log.MetadataRegistered(_logger, _metadataKey.Key, url, role.ToString().ToUpperInvariant());
        }
    }

    /// <summary>Drain, first steps: leave the metadata server, then refuse new HTTP requests while those in flight finish.</summary>
    private async Task DrainHttpAsync(TimeSpan deadline)
    {
        if (_metadataKey is { } key)
        {
            await key.DeleteAsync().ConfigureAwait(false);
        }
        if (_http is { } http)
        {
            await http.DrainAsync(deadline).ConfigureAwait(false);
        }
    }

    /// <summary>This worker in-process; any other worker (a context worker releasing a lease) over gRPC.</summary>
    private sealed class LocalFirstPlane(EngineWorker local, GrpcRequestPlane remote) : IRequestPlane
    {
        public IWorkerClient GetClient(WorkerInstance instance) =>
            instance.InstanceId == local.Instance.InstanceId ? local : remote.GetClient(instance);
    }

    private sealed class DisposeAction(Action action) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            action();
            return ValueTask.CompletedTask;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(2, LogLevel.Information, "listed in the metadata server as {Key} ({Url}, {Role})")]
        public static partial void MetadataRegistered(ILogger logger, string key, string url, string role);
    }
}
