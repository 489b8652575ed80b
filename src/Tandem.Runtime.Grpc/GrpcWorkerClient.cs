using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using Tandem.Abstractions;
using Tandem.Runtime.Grpc.Protocol;

namespace Tandem.Runtime.Grpc;

/// <summary>Health of a worker as its request plane reports it.</summary>
public sealed record WorkerHealth(string InstanceId, bool Serving, bool Draining, int InFlight);

/// <summary>
/// <see cref="IWorkerClient"/> over gRPC: every call carries a deadline, cancelling the token or abandoning the token
/// enumeration cancels the call (and so the request on the worker), and status codes come back as the engine
/// exceptions the worker threw. The channel is shared and owned by whoever created it (usually <see cref="GrpcRequestPlane"/>).
/// </summary>
public sealed class GrpcWorkerClient : IWorkerClient
{
    private readonly Protocol.Worker.WorkerClient _client;
    private readonly GrpcWorkerClientOptions _options;

    public GrpcWorkerClient(WorkerInstance instance, GrpcChannel channel, GrpcWorkerClientOptions? options = null)
        : this(instance, (ChannelBase)channel, options)
    {
    }

    /// <summary>Over any channel or call invoker (tests, interceptors).</summary>
    public GrpcWorkerClient(WorkerInstance instance, ChannelBase channel, GrpcWorkerClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(channel);
        options ??= new GrpcWorkerClientOptions();
        options.Validate();
        Instance = instance;
        _options = options;
        _client = new Protocol.Worker.WorkerClient(channel);
    }

    public WorkerInstance Instance { get; }

    public IAsyncEnumerable<TokenOutput> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Stream(RpcMapping.ToMessage(request), cancellationToken);
    }

    private async IAsyncEnumerable<TokenOutput> Stream(GenerateRpcRequest message, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        AsyncServerStreamingCall<TokenMessage> call;
        try
        {
            call = _client.Generate(message, Options(_options.GenerateDeadline, cancellationToken));
        }
        catch (RpcException e)
        {
            throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
        }
        // Disposing the call (the enumeration ended or was abandoned) resets the HTTP/2 stream: the worker sees its
        // call cancelled and frees the request's KV blocks.
        using (call)
        {
            var stream = call.ResponseStream;
            while (true)
            {
                TokenOutput token;
                try
                {
                    if (!await stream.MoveNext(cancellationToken).ConfigureAwait(false))
                    {
                        yield break;
                    }
                    token = RpcMapping.FromMessage(stream.Current);
                }
                catch (RpcException e)
                {
                    throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
                }
                yield return token;
            }
        }
    }

    public async ValueTask<EngineStats> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var reply = await _client.StatsAsync(new StatsRequest(), Options(_options.UnaryDeadline, cancellationToken)).ConfigureAwait(false);
            return RpcMapping.FromMessage(reply);
        }
        catch (RpcException e)
        {
            throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
        }
    }

    public async Task<PrefillHandle> PrefillAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            var reply = await _client.PrefillAsync(RpcMapping.ToMessage(request), Options(_options.UnaryDeadline, cancellationToken)).ConfigureAwait(false);
            var first = reply.FirstToken is null
                ? throw new EngineUnavailableException($"worker {Instance.InstanceId} answered a prefill without a first token")
                : RpcMapping.FromMessage(reply.FirstToken);
            return new PrefillHandle(first, reply.Kv is null ? null : RpcMapping.FromMessage(reply.Kv));
        }
        catch (RpcException e)
        {
            throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
        }
    }

    public async ValueTask ReleaseKvAsync(long handle, CancellationToken cancellationToken = default)
    {
        try
        {
            await _client.ReleaseKvAsync(new ReleaseKvRequest { Handle = handle }, Options(_options.UnaryDeadline, cancellationToken)).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
        }
    }

    /// <summary>Whether the worker answers and takes new requests.</summary>
    public async Task<WorkerHealth> HealthAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var reply = await _client.HealthAsync(new HealthRequest(), Options(_options.UnaryDeadline, cancellationToken)).ConfigureAwait(false);
            return new WorkerHealth(reply.InstanceId, reply.Serving, reply.Draining, reply.InFlight);
        }
        catch (RpcException e)
        {
            throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
        }
    }

    /// <summary>
    /// Asks the worker to stop taking new requests and waits up to <paramref name="timeout"/> for its in-flight ones;
    /// true when they all finished. The call's deadline is the timeout plus <see cref="GrpcWorkerClientOptions.UnaryDeadline"/>.
    /// </summary>
    public async Task<bool> DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        try
        {
            var request = new DrainRequest { TimeoutMs = Math.Max(1, (long)timeout.TotalMilliseconds) };
            var reply = await _client.DrainAsync(request, Options(timeout + _options.UnaryDeadline, cancellationToken)).ConfigureAwait(false);
            return reply.Completed;
        }
        catch (RpcException e)
        {
            throw RpcErrors.FromRpc(e, Instance.InstanceId, cancellationToken);
        }
    }

    private static CallOptions Options(TimeSpan deadline, CancellationToken cancellationToken) =>
        new(deadline: DateTime.UtcNow + deadline, cancellationToken: cancellationToken);
}
