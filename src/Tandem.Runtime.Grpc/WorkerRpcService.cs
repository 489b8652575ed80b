using Grpc.Core;
using Tandem.Abstractions;
using Tandem.Runtime.Grpc.Protocol;

namespace Tandem.Runtime.Grpc;

/// <summary>
/// Drains a worker: stop taking new work and wait up to the timeout for in-flight requests; true when they all finished.
/// </summary>
public delegate Task<bool> WorkerDrainHandler(TimeSpan timeout, CancellationToken cancellationToken);

/// <summary>
/// The gRPC face of a worker: maps each call of worker.proto onto a local <see cref="IWorkerClient"/>. Engine exceptions
/// become status codes (see <c>docs/design/request-plane.md</c>); the call's cancellation (client cancelled, deadline,
/// connection lost) and <see cref="Stop"/> cancel the work on the worker.
/// </summary>
public sealed class WorkerRpcService : Protocol.Worker.WorkerBase, IDisposable
{
    private static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DrainPollInterval = TimeSpan.FromMilliseconds(10);

    private readonly IWorkerClient _worker;
    private readonly WorkerDrainHandler? _drain;
    private readonly CancellationTokenSource _stopping = new();
    private int _inFlight;
    private int _draining;

    /// <param name="worker">The local worker the calls go to.</param>
    /// <param name="drain">
    /// Called by <c>Drain</c> after this service stopped taking new requests; when null, <c>Drain</c> waits for the
    /// requests this service has in flight.
    /// </param>
    public WorkerRpcService(IWorkerClient worker, WorkerDrainHandler? drain = null)
    {
        ArgumentNullException.ThrowIfNull(worker);
        _worker = worker;
        _drain = drain;
    }

    /// <summary>Generate and Prefill calls being served now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>True once a drain started: new Generate and Prefill calls are refused with Unavailable.</summary>
    public bool IsDraining => Volatile.Read(ref _draining) != 0;

    /// <summary>Refuses new Generate and Prefill calls (Unavailable) and reports draining in Health; calls in flight go on.</summary>
    public void BeginDrain() => Interlocked.Exchange(ref _draining, 1);

    /// <summary>Cancels every call in flight (the host calls it when stopping).</summary>
    public void Stop()
    {
        Interlocked.Exchange(ref _draining, 1);
        try
        {
            _stopping.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already stopped.
        }
    }

    public void Dispose()
    {
        Stop();
        _stopping.Dispose();
    }

    public override async Task Generate(GenerateRpcRequest request, IServerStreamWriter<TokenMessage> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        Enter();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping.Token);
        var cancellationToken = cts.Token;
        try
        {
            var generateRequest = RpcMapping.FromMessage(request);
            // One message for the whole stream: each write is awaited, and the message is serialized before it completes.
            var message = new TokenMessage();
            await foreach (var token in _worker.GenerateAsync(generateRequest, cancellationToken).WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                RpcMapping.Fill(message, token);
                await responseStream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw RpcErrors.ToRpc(Cancelled(e, context));
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public override async Task<PrefillReply> Prefill(GenerateRpcRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Enter();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping.Token);
        try
        {
            var handle = await _worker.PrefillAsync(RpcMapping.FromMessage(request), cts.Token).ConfigureAwait(false);
            var reply = new PrefillReply { FirstToken = RpcMapping.ToMessage(handle.FirstToken) };
            if (handle.Kv is not null)
            {
                reply.Kv = RpcMapping.ToMessage(handle.Kv);
            }
            return reply;
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw RpcErrors.ToRpc(Cancelled(e, context));
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public override async Task<ReleaseKvReply> ReleaseKv(ReleaseKvRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            await _worker.ReleaseKvAsync(request.Handle, context.CancellationToken).ConfigureAwait(false);
            return new ReleaseKvReply();
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw RpcErrors.ToRpc(e);
        }
    }

    public override async Task<StatsReply> Stats(StatsRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            return RpcMapping.ToMessage(await _worker.GetStatsAsync(context.CancellationToken).ConfigureAwait(false));
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw RpcErrors.ToRpc(e);
        }
    }

    public override Task<HealthReply> Health(HealthRequest request, ServerCallContext context) =>
        Task.FromResult(new HealthReply
        {
            InstanceId = _worker.Instance.InstanceId,
            Serving = !IsDraining,
            Draining = IsDraining,
            InFlight = InFlight,
        });

    public override async Task<DrainReply> Drain(DrainRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Interlocked.Exchange(ref _draining, 1);
        var timeout = request.TimeoutMs > 0 ? TimeSpan.FromMilliseconds(request.TimeoutMs) : DefaultDrainTimeout;
        try
        {
            var completed = _drain is not null
                ? await _drain(timeout, context.CancellationToken).ConfigureAwait(false)
                : await WaitForInFlightAsync(timeout, context.CancellationToken).ConfigureAwait(false);
            return new DrainReply { Completed = completed, InFlight = InFlight };
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw RpcErrors.ToRpc(e);
        }
    }

    private void Enter()
    {
        Interlocked.Increment(ref _inFlight);
        if (IsDraining)
        {
            Interlocked.Decrement(ref _inFlight);
            throw new RpcException(new Status(StatusCode.Unavailable, $"worker {_worker.Instance.InstanceId} is draining"));
        }
    }

    private async Task<bool> WaitForInFlightAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (InFlight > 0)
        {
            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }
            await Task.Delay(DrainPollInterval, cancellationToken).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>A cancellation caused by the host stopping is reported as Unavailable (the caller may retry elsewhere).</summary>
    private Exception Cancelled(Exception e, ServerCallContext context) =>
        e is OperationCanceledException && _stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested
            ? new EngineUnavailableException($"worker {_worker.Instance.InstanceId} is stopping")
            : e;
}
