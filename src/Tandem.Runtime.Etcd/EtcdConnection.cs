using Etcdserverpb;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Tandem.Runtime.Etcd;

/// <summary>
/// One gRPC channel to the etcd cluster and the raw service stubs from dotnet-etcd. Tandem drives the stubs itself
/// (rather than the client's convenience wrappers) so it controls watch revisions, resyncs and every deadline.
/// </summary>
internal sealed class EtcdConnection : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly ServiceProvider? _services;
    private readonly TimeSpan _requestTimeout;

    public EtcdConnection(EtcdDiscoveryOptions options)
    {
        var endpoints = options.ParseEndpoints();
        _requestTimeout = options.RequestTimeout;
        var secure = endpoints[0].Scheme == Uri.UriSchemeHttps;
        var channelOptions = new GrpcChannelOptions
        {
            Credentials = secure ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure,
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = options.RequestTimeout,
                // Pings notice a silently dead connection (host gone, network cut) under a long-lived watch stream.
                KeepAlivePingDelay = TimeSpan.FromSeconds(5),
                KeepAlivePingTimeout = options.RequestTimeout < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : options.RequestTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                EnableMultipleHttp2Connections = true,
            },
            // etcd restarts take seconds; reconnect quickly rather than after gRPC's default backoff of up to minutes.
            InitialReconnectBackoff = options.MinReconnectDelay,
            MaxReconnectBackoff = options.MaxReconnectDelay,
            DisposeHttpClient = true,
            ThrowOperationCanceledOnCancellation = true,
        };
        Uri address;
        if (endpoints.Count == 1)
        {
            address = endpoints[0];
        }
        else
        {
            var addresses = endpoints.Select(e => new BalancerAddress(e.Host, e.Port)).ToArray();
            var services = new ServiceCollection();
            services.AddSingleton<ResolverFactory>(new StaticResolverFactory(_ => addresses));
            _services = services.BuildServiceProvider();
            channelOptions.ServiceProvider = _services;
            channelOptions.ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
            address = new Uri("static:///etcd");
        }
        _channel = GrpcChannel.ForAddress(address, channelOptions);
        Kv = new KV.KVClient(_channel);
        Watch = new Watch.WatchClient(_channel);
        Lease = new Lease.LeaseClient(_channel);
    }

    public KV.KVClient Kv { get; }

    public Watch.WatchClient Watch { get; }

    public Lease.LeaseClient Lease { get; }

    /// <summary>The absolute deadline for a unary call starting now.</summary>
    public DateTime Deadline() => DateTime.UtcNow + _requestTimeout;

    public static DateTime Deadline(TimeSpan timeout) => DateTime.UtcNow + timeout;

    public void Dispose()
    {
        _channel.Dispose();
        _services?.Dispose();
    }
}
