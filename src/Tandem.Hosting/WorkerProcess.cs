using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Engine.Serving;
using Tandem.Runtime;
using Tandem.Runtime.Etcd;
using Tandem.Runtime.Grpc;
using Tandem.Transfer;
using Tandem.Worker;

namespace Tandem.Hosting;

/// <summary>Settings of `tandem worker`.</summary>
public sealed record WorkerProcessOptions
{
    public required string ModelPath { get; init; }
    public string? ServedModelName { get; init; }
    public WorkerRole Role { get; init; } = WorkerRole.Both;
    public string? InstanceId { get; init; }

    /// <summary>Address the worker's request-plane and KV servers listen on and advertise.</summary>
    public string Host { get; init; } = "127.0.0.1";
    public int RpcPort { get; init; }
    public int KvPort { get; init; }

    /// <summary>
    /// <c>host:port</c> peers reach this worker's KV transfer server at, when it differs from <see cref="Host"/> and the
    /// bound KV port (NAT, containers, a proxy in front); null = the bound address.
    /// </summary>
    public string? KvAdvertiseAddress { get; init; }

    /// <summary>Advertise the shared-memory domain so that workers on this host push and pull over shared memory (else TCP only).</summary>
    public bool SharedMemory { get; init; } = true;
    public int Threads { get; init; }

    /// <summary><c>etcd://host:port[,...]</c> to register in; null = not registered (static topology).</summary>
    public string? Discovery { get; init; }
    public string Namespace { get; init; } = "default";

    /// <summary><c>nats://host:port</c> for the prefill queue; null = no remote prefill over the queue (decode-first prefills locally).</summary>
    public string? Nats { get; init; }

    public ServingOptions Serving { get; init; } = new();
    public DisaggregationOptions Disaggregation { get; init; } = new();

    /// <summary>Serve the OpenAI API (TensorRT-LLM's context/generation server protocol) on this worker; null = request plane only.</summary>
    public WorkerHttpOptions? Http { get; init; }
}

/// <summary>
/// `tandem worker`: one engine in a role, served over the network: the request plane (gRPC), the KV transfer server
/// (TCP and shared memory), registration in etcd (with lease and keep-alive) and the prefill queue on NATS.
/// </summary>
public sealed partial class WorkerProcess : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly ILogger _logger;
    private LoadedModel? _model;
    private EtcdRegistration? _registration;
    private WorkerRpcHost? _rpc;

    private WorkerProcess(ILogger logger)
    {
        _logger = logger;
    }

    public EngineWorker Worker { get; private set; } = null!;

    public WorkerInstance Instance => Worker.Instance;

    public string RpcUrl { get; private set; } = "";

    public string KvAddress { get; private set; } = "";

    public static async Task<WorkerProcess> StartAsync(WorkerProcessOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        options.Serving.Validate();
        options.Disaggregation.Validate();
        var process = new WorkerProcess(loggerFactory.CreateLogger("Tandem.WorkerProcess"));
        try
        {
            var loaded = LoadedModel.Load(options.ModelPath, threads: options.Threads);
            process._model = loaded;
            var name = options.ServedModelName ?? loaded.Artifact.Name;
            var id = options.InstanceId ?? $"{options.Role.ToString().ToLowerInvariant()}-{Environment.MachineName}-{Environment.ProcessId}";
            var fingerprint = ModelSource.Fingerprint(loaded);
            // With shared memory on, the KV pool is a file in the shared-memory directory: peers on this host copy blocks
            // straight into or out of it (one copy per transfer).
            var serving = options.SharedMemory ? options.Serving with { KvSharedMemoryDirectory = KvTransferOptions.Default.SharedMemoryDirectory } : options.Serving;
            var engine = new ServingEngine(loaded.Transformer, loaded.Tokenizer.StopTokenIds, serving);
            if (engine.KvPoolSharedMemoryFailure is { } failure)
            {
                Log.PrivateKvPool(process._logger, failure);
            }
            var access = new EngineKvAccess(engine, fingerprint);
            var kvServer = new KvTransferServer(access, options.Host, options.KvPort);
            process._owned.Add(kvServer);
            // tcp://host:port?shm=ID: peers that see the same /dev/shm use shared memory, the others TCP.
            var tcpAddress = options.KvAdvertiseAddress is { } advertised ? TcpKvTransport.Scheme + advertised : kvServer.TcpAddress;
            process.KvAddress = options.SharedMemory ? SameHostKvTransport.Advertise(tcpAddress, SameHostKvTransport.Parse(kvServer.AdvertisedAddress).DomainId) : tcpAddress;
            IEventBus bus = new InMemoryEventBus();
            if (options.Nats is { } nats)
            {
                var natsBus = await EventBusConnect.ConnectAsync(nats, id, cancellationToken).ConfigureAwait(false);
                process._owned.Add(natsBus);
                bus = natsBus;
            }
            var tcp = new TcpKvTransport();
            var shm = new SharedMemoryKvTransport();
            process._owned.Add(tcp);
            process._owned.Add(shm);
            IDiscovery? discovery = null;
            if (options.Discovery is { } etcd)
            {
                var etcdDiscovery = new EtcdDiscovery(new EtcdDiscoveryOptions { Endpoints = etcd, Namespace = options.Namespace }, loggerFactory.CreateLogger("Tandem.Discovery"));
                process._owned.Add(etcdDiscovery);
                discovery = etcdDiscovery;
            }
            var services = new WorkerServices
            {
                Bus = bus,
                Transports = [new SameHostKvTransport(tcp, shm), shm],
                KvAddress = process.KvAddress,
                // Without a shared bus a decode worker cannot reach prefill workers: it then prefills locally.
                Discovery = options.Nats is null ? new InMemoryDiscovery() : discovery,
                Options = options.Disaggregation with { Namespace = options.Namespace },
            };
            var instance = new WorkerInstance
            {
                InstanceId = id,
                Role = options.Role,
                Model = name,
                ModelFingerprint = fingerprint,
                StartedAt = DateTimeOffset.UtcNow,
            };
            var worker = new EngineWorker(engine, instance, services, loggerFactory.CreateLogger("Tandem.Worker"), ownsEngine: true, kvAccess: access);
            process.Worker = worker;
            var rpc = await WorkerRpcHost.StartAsync(worker, new WorkerRpcHostOptions { Host = options.Host, Port = options.RpcPort }, process.DrainForRpcAsync, loggerFactory, cancellationToken).ConfigureAwait(false);
            process._owned.Add(rpc);
            process._rpc = rpc;
            process.RpcUrl = rpc.Url.ToString().TrimEnd('/');
            worker.Start();
            await process.StartHttpAsync(options, loaded, name, loggerFactory, cancellationToken).ConfigureAwait(false);
            await process.StartKvEventsAsync(options, bus, loggerFactory).ConfigureAwait(false);
            if (options.Discovery is { } endpoints)
            {
                var registered = worker.Instance with { Endpoints = new Dictionary<string, string>(worker.Instance.Endpoints) { ["rpc"] = process.RpcUrl } };
                process._registration = await EtcdRegistration.StartAsync(new EtcdDiscoveryOptions { Endpoints = endpoints, Namespace = options.Namespace }, registered, loggerFactory.CreateLogger("Tandem.Registration"), cancellationToken).ConfigureAwait(false);
            }
            Log.Started(process._logger, id, options.Role.ToString().ToLowerInvariant(), name, process.RpcUrl, process.KvAddress);
            return process;
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<bool> DrainForRpcAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await DrainAsync(timeout, cancellationToken).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        if (_registration is { } registration)
        {
            _registration = null;
            await registration.DisposeAsync().ConfigureAwait(false);
        }
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync().ConfigureAwait(false);
        }
        _owned.Clear();
        if (Worker is { } worker)
        {
            await worker.DisposeAsync().ConfigureAwait(false);
        }
        _model?.Dispose();
        _model = null;
    }

    private static partial class Log
    {
        [LoggerMessage(5, LogLevel.Warning, "the KV pool is in private memory, not shared memory ({Reason}): KV transfers with workers on this host take two copies instead of one")]
        public static partial void PrivateKvPool(ILogger logger, string reason);

        [LoggerMessage(1, LogLevel.Information, "worker {Id} ({Role}) serving {Model}: request plane {Rpc}, KV {Kv}")]
        public static partial void Started(ILogger logger, string id, string role, string model, string rpc, string kv);
    }
}
