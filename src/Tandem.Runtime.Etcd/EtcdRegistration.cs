using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;

namespace Tandem.Runtime.Etcd;

/// <summary>
/// Keeps one worker listed in etcd: both of its keys (instance and model) live under one lease that a background
/// loop refreshes every TTL/3. A lost lease (etcd restarted without its data, or this process paused past the TTL)
/// is noticed on the next refresh and the worker registers again with a new lease. <see cref="DeregisterAsync"/>
/// (drain) and <see cref="DisposeAsync"/> delete the keys and revoke the lease, so watchers see the worker leave at
/// once instead of after the TTL.
/// </summary>
public sealed partial class EtcdRegistration : IAsyncDisposable
{
    private readonly EtcdDiscoveryOptions _options;
    private readonly EtcdConnection _connection;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly ByteString _instanceKey;
    private readonly ByteString _modelKey;
    private readonly ByteString _instanceValue;
    private readonly ByteString _modelValue;
    private readonly SemaphoreSlim _deregisterGate = new(1, 1);
    private Task _loop = Task.CompletedTask;
    private long _leaseId;
    private int _state = (int)RegistrationState.Registering;
    private int _registrations;
    private bool _disposed;

    private EtcdRegistration(EtcdDiscoveryOptions options, WorkerInstance instance, ILogger? logger)
    {
        _options = options;
        Instance = instance;
        _logger = logger ?? NullLogger.Instance;
        InstanceKey = EtcdKeys.InstanceKey(options.Namespace, instance.Component, instance.InstanceId);
        ModelKey = EtcdKeys.ModelKey(options.Namespace, instance.Model, instance.InstanceId);
        _instanceKey = ByteString.CopyFromUtf8(InstanceKey);
        _modelKey = ByteString.CopyFromUtf8(ModelKey);
        _instanceValue = ByteString.CopyFrom(WorkerInstanceCodec.EncodeInstance(instance));
        _modelValue = ByteString.CopyFrom(WorkerInstanceCodec.EncodeModel(instance));
        _connection = new EtcdConnection(options);
    }

    /// <summary>The worker this registration lists.</summary>
    public WorkerInstance Instance { get; }

    /// <summary><c>/tandem/v1/{namespace}/instances/{component}/{instance_id}</c>.</summary>
    public string InstanceKey { get; }

    /// <summary><c>/tandem/v1/{namespace}/models/{model}/{instance_id}</c>.</summary>
    public string ModelKey { get; }

    public RegistrationState State => (RegistrationState)Volatile.Read(ref _state);

    /// <summary>The current lease (0 before the first registration).</summary>
    public long LeaseId => Volatile.Read(ref _leaseId);

    /// <summary>How many times the keys were written under a new lease (1 after start; more after lease losses).</summary>
    public int Registrations => Volatile.Read(ref _registrations);

    /// <summary>Raised on the background loop whenever <see cref="State"/> changes.</summary>
    public event Action<RegistrationState>? StateChanged;

    /// <summary>
    /// Registers <paramref name="instance"/> and starts refreshing its lease. The first registration is retried with
    /// backoff until it succeeds or <paramref name="cancellationToken"/> fires, so a worker never starts unlisted.
    /// </summary>
    public static async Task<EtcdRegistration> StartAsync(
        EtcdDiscoveryOptions options, WorkerInstance instance, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(instance);
        options.Validate();
        var registration = new EtcdRegistration(options, instance, logger);
        try
        {
            var delay = options.MinReconnectDelay;
            while (true)
            {
                try
                {
                    await registration.RegisterAsync(cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (Exception ex) when (IsTransient(ex, cancellationToken))
                {
                    Log.RegisterFailed(registration._logger, registration.InstanceKey, delay, ex);
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                    delay = NextDelay(delay, options);
                }
            }
        }
        catch
        {
            registration._connection.Dispose();
            registration._stop.Dispose();
            throw;
        }
        registration._loop = Task.Run(registration.KeepAliveLoopAsync, CancellationToken.None);
        return registration;
    }

    /// <summary>
    /// Removes the worker from discovery now (drain): stops the refreshes, deletes both keys and revokes the lease.
    /// Failures are logged, not thrown: the keys then disappear when the lease expires. Idempotent.
    /// </summary>
    public async Task DeregisterAsync(CancellationToken cancellationToken = default)
    {
        await _deregisterGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (State == RegistrationState.Deregistered)
            {
                return;
            }
            await StopLoopAsync().ConfigureAwait(false);
            var leaseId = LeaseId;
            try
            {
                var txn = new TxnRequest();
                txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = _instanceKey } });
                txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = _modelKey } });
                await _connection.Kv.TxnAsync(txn, deadline: _connection.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
                await _connection.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, deadline: _connection.Deadline(),
                    cancellationToken: cancellationToken).ConfigureAwait(false);
                Log.Deregistered(_logger, InstanceKey, leaseId);
            }
            catch (Exception ex) when (IsTransient(ex, cancellationToken))
            {
                Log.DeregisterFailed(_logger, InstanceKey, leaseId, ex);
            }
            SetState(RegistrationState.Deregistered);
        }
        finally
        {
            _deregisterGate.Release();
        }
    }

    /// <summary>Deregisters (see <see cref="DeregisterAsync"/>) and closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        await DeregisterAsync().ConfigureAwait(false);
        _disposed = true;
        _connection.Dispose();
        _stop.Dispose();
        _deregisterGate.Dispose();
    }

    /// <summary>
    /// Stops refreshing and closes the connection without touching etcd, as if the process had died: the keys stay
    /// until the lease expires. For tests of failure handling.
    /// </summary>
    internal async Task AbandonAsync()
    {
        await StopLoopAsync().ConfigureAwait(false);
        _disposed = true;
        _connection.Dispose();
    }

    private async Task StopLoopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        await _loop.ConfigureAwait(false);
    }

    /// <summary>Grants a new lease and writes both keys under it in one transaction.</summary>
    private async Task RegisterAsync(CancellationToken cancellationToken)
    {
        SetState(RegistrationState.Registering);
        var grant = await _connection.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = _options.LeaseTtlSeconds },
            deadline: _connection.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(grant.Error))
        {
            throw new InvalidOperationException($"etcd refused the lease: {grant.Error}");
        }
        var txn = new TxnRequest();
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = _instanceKey, Value = _instanceValue, Lease = grant.ID } });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = _modelKey, Value = _modelValue, Lease = grant.ID } });
        try
        {
            await _connection.Kv.TxnAsync(txn, deadline: _connection.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await TryRevokeAsync(grant.ID).ConfigureAwait(false);
            throw;
        }
        var previous = Interlocked.Exchange(ref _leaseId, grant.ID);
        var count = Interlocked.Increment(ref _registrations);
        Log.Registered(_logger, InstanceKey, grant.ID, grant.TTL, count);
        SetState(RegistrationState.Registered);
        if (previous != 0 && previous != grant.ID)
        {
            // The old lease may still exist when etcd was merely unreachable; the keys moved to the new one already.
            await TryRevokeAsync(previous).ConfigureAwait(false);
        }
    }

    private async Task KeepAliveLoopAsync()
    {
        var ct = _stop.Token;
        var lastRefresh = DateTime.UtcNow;
        var delay = _options.MinReconnectDelay;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (State == RegistrationState.Registering)
                {
                    await RegisterAsync(ct).ConfigureAwait(false);
                    lastRefresh = DateTime.UtcNow;
                    delay = _options.MinReconnectDelay;
                    continue;
                }
                await Task.Delay(State == RegistrationState.Registered ? _options.KeepAliveInterval : delay, ct).ConfigureAwait(false);
                var ttl = await KeepAliveOnceAsync(ct).ConfigureAwait(false);
                if (ttl <= 0)
                {
                    Log.LeaseLost(_logger, InstanceKey, LeaseId);
                    SetState(RegistrationState.Registering);
                    continue;
                }
                lastRefresh = DateTime.UtcNow;
                delay = _options.MinReconnectDelay;
                SetState(RegistrationState.Registered);
            }
            catch (Exception ex)
            {
                if (ct.IsCancellationRequested)
                {
                    break;
                }
                Log.KeepAliveFailed(_logger, InstanceKey, LeaseId, delay, ex);
                if (DateTime.UtcNow - lastRefresh > _options.LeaseTtl)
                {
                    // Unreachable for longer than the TTL: the lease is gone or about to be; start over with a new one.
                    SetState(RegistrationState.Registering);
                    await DelayQuietly(delay, ct).ConfigureAwait(false);
                }
                else
                {
                    SetState(RegistrationState.Disconnected);
                }
                delay = NextDelay(delay, _options);
            }
        }
    }

    /// <summary>One refresh on a short-lived keep-alive stream; returns the remaining TTL (0 when the lease is gone).</summary>
    private async Task<long> KeepAliveOnceAsync(CancellationToken cancellationToken)
    {
        var timeout = _options.RequestTimeout < _options.KeepAliveInterval ? _options.RequestTimeout : _options.KeepAliveInterval;
        using var call = _connection.Lease.LeaseKeepAlive(deadline: EtcdConnection.Deadline(timeout), cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = LeaseId }, cancellationToken).ConfigureAwait(false);
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "keep-alive stream closed without a response"));
        }
        return call.ResponseStream.Current.TTL;
    }

    private async Task TryRevokeAsync(long leaseId)
    {
        try
        {
            await _connection.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, deadline: _connection.Deadline())
                .ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            Log.RevokeFailed(_logger, leaseId, ex.Status.Detail);
        }
    }

    private void SetState(RegistrationState state)
    {
        var old = (RegistrationState)Interlocked.Exchange(ref _state, (int)state);
        if (old == state)
        {
            return;
        }
        Log.StateChanged(_logger, InstanceKey, old, state);
        try
        {
            StateChanged?.Invoke(state);
        }
        catch (Exception ex)
        {
            Log.HandlerFailed(_logger, ex);
        }
    }

    private static async Task DelayQuietly(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    internal static TimeSpan NextDelay(TimeSpan delay, EtcdDiscoveryOptions options) =>
        delay * 2 < options.MaxReconnectDelay ? delay * 2 : options.MaxReconnectDelay;

    /// <summary>Errors worth retrying: RPC failures and deadlines, but not cancellation asked for by the caller.</summary>
    internal static bool IsTransient(Exception ex, CancellationToken cancellationToken) => ex switch
    {
        _ when cancellationToken.IsCancellationRequested => false,
        RpcException { StatusCode: StatusCode.Cancelled } => !cancellationToken.IsCancellationRequested,
        RpcException or IOException or HttpRequestException or InvalidOperationException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };
}
