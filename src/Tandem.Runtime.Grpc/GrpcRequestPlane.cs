using System.Collections.Concurrent;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Tandem.Abstractions;

namespace Tandem.Runtime.Grpc;

/// <summary>
/// The request plane to workers in other processes: one <see cref="GrpcChannel"/> (HTTP/2 connections, keep-alive
/// pings) per worker address, reused by every call; the address is the instance's <c>rpc</c> endpoint.
/// </summary>
public sealed class GrpcRequestPlane : IRequestPlane, IDisposable
{
    /// <summary>The key of <see cref="WorkerInstance.Endpoints"/> that holds a worker's request-plane address.</summary>
    public const string EndpointName = "rpc";

    private readonly ConcurrentDictionary<string, Lazy<GrpcChannel>> _channels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, GrpcWorkerClient> _clients = new(StringComparer.Ordinal);
    private readonly GrpcWorkerClientOptions _options;
    private readonly ILoggerFactory? _loggerFactory;
    private int _disposed;

    public GrpcRequestPlane(GrpcWorkerClientOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        _options = options ?? new GrpcWorkerClientOptions();
        _options.Validate();
        _loggerFactory = loggerFactory;
    }

    /// <summary>Channels open now (one per worker address).</summary>
    public int ChannelCount => _channels.Count;

    public IWorkerClient GetClient(WorkerInstance instance) => GetGrpcClient(instance);

    /// <summary>Like <see cref="GetClient"/>, with the gRPC-only calls (health, drain).</summary>
    public GrpcWorkerClient GetGrpcClient(WorkerInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!instance.Endpoints.TryGetValue(EndpointName, out var endpoint) || string.IsNullOrWhiteSpace(endpoint))
        {
            throw new EngineUnavailableException($"worker {instance.InstanceId} publishes no '{EndpointName}' endpoint");
        }
        var address = Normalize(endpoint, instance.InstanceId);
        if (_clients.TryGetValue(address, out var cached) && ReferenceEquals(cached.Instance, instance))
        {
            return cached;
        }
        var channel = _channels.GetOrAdd(address, a => new Lazy<GrpcChannel>(() => CreateChannel(a))).Value;
        var client = new GrpcWorkerClient(instance, channel, _options);
        _clients[address] = client;
        return client;
    }

    /// <summary>Closes the channel to <paramref name="endpoint"/> (a worker that left); calls on it fail with Unavailable.</summary>
    public void Forget(string endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var address = Normalize(endpoint, endpoint);
        _clients.TryRemove(address, out _);
        if (_channels.TryRemove(address, out var channel) && channel.IsValueCreated)
        {
            channel.Value.Dispose();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        foreach (var channel in _channels.Values)
        {
            if (channel.IsValueCreated)
            {
                channel.Value.Dispose();
            }
        }
        _channels.Clear();
        _clients.Clear();
    }

    private static string Normalize(string endpoint, string instanceId)
    {
        var text = endpoint.Contains("://", StringComparison.Ordinal) ? endpoint : "http://" + endpoint;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new EngineUnavailableException($"worker {instanceId} has an invalid '{EndpointName}' endpoint '{endpoint}'");
        }
        return uri.GetLeftPart(UriPartial.Authority);
    }

    private GrpcChannel CreateChannel(string address)
    {
#pragma warning disable CA2000 // The channel owns and disposes the handler.
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = _options.ConnectTimeout,
            KeepAlivePingDelay = _options.KeepAlivePingDelay,
            KeepAlivePingTimeout = _options.KeepAlivePingTimeout,
            // Idle connections are pinged too, so a worker that vanished without closing its sockets is noticed
            // before the next request waits on it.
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            EnableMultipleHttp2Connections = true,
        };
#pragma warning restore CA2000
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            LoggerFactory = _loggerFactory,
            // Failures stay RpcExceptions (a deadline is not a cancellation); GrpcWorkerClient turns a Cancelled status
            // caused by the caller's own token into OperationCanceledException.
            MaxReceiveMessageSize = _options.MaxReceiveMessageSize,
        });
    }
}
