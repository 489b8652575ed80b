using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Tandem.Runtime.Etcd;

/// <summary>
/// Plain keys in etcd for layouts other than Tandem's own (TensorRT-LLM's metadata server: <c>trtllm/{id}</c>): list a
/// prefix, delete a key, and keep one key alive under a lease (<see cref="KeepAsync"/>). Every call has a deadline.
/// </summary>
public sealed partial class EtcdKeyValue : IDisposable
{
    private readonly EtcdConnection _connection;

    public EtcdKeyValue(EtcdDiscoveryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _connection = new EtcdConnection(options);
    }

    public EtcdDiscoveryOptions Options { get; }

    /// <summary>Every key starting with <paramref name="prefix"/> and its value.</summary>
    public async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        var key = ByteString.CopyFromUtf8(prefix);
        var response = await _connection.Kv.RangeAsync(new RangeRequest { Key = key, RangeEnd = ByteString.CopyFrom(EtcdKeys.PrefixRangeEnd(prefix)) },
            deadline: _connection.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
        return [.. response.Kvs.Select(kv => new KeyValuePair<string, byte[]>(kv.Key.ToStringUtf8(), kv.Value.ToByteArray()))];
    }

    public async Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        await _connection.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = ByteString.CopyFromUtf8(key) },
            deadline: _connection.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes <paramref name="key"/> under a lease of <see cref="EtcdDiscoveryOptions.LeaseTtl"/> and refreshes it every
    /// third of the TTL until the returned handle is disposed (which deletes the key and revokes the lease). A lost lease
    /// is replaced and the key written again, so a process that was paused or cut off lists itself again.
    /// </summary>
    public async Task<LeasedKey> KeepAsync(string key, byte[] value, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        var leased = new LeasedKey(this, ByteString.CopyFromUtf8(key), ByteString.CopyFrom(value), logger ?? NullLogger.Instance);
        await leased.WriteAsync(cancellationToken).ConfigureAwait(false);
        leased.Start();
        return leased;
    }

    public void Dispose() => _connection.Dispose();

    /// <summary>A key kept alive under a lease; disposing it deletes the key.</summary>
    public sealed class LeasedKey : IAsyncDisposable
    {
        private readonly EtcdKeyValue _owner;
        private readonly ByteString _key;
        private readonly ByteString _value;
        private readonly ILogger _logger;
        private readonly CancellationTokenSource _stop = new();
        private Task _loop = Task.CompletedTask;
        private long _lease;
        private int _deleted;

        internal LeasedKey(EtcdKeyValue owner, ByteString key, ByteString value, ILogger logger)
        {
            _owner = owner;
            _key = key;
            _value = value;
            _logger = logger;
        }

        public string Key => _key.ToStringUtf8();

        internal void Start() => _loop = Task.Run(LoopAsync);

        internal async Task WriteAsync(CancellationToken cancellationToken)
        {
            var c = _owner._connection;
            var grant = await c.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = _owner.Options.LeaseTtlSeconds }, deadline: c.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
            await c.Kv.PutAsync(new PutRequest { Key = _key, Value = _value, Lease = grant.ID }, deadline: c.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _lease, grant.ID);
        }

        private async Task LoopAsync()
        {
            var ct = _stop.Token;
            var c = _owner._connection;
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(_owner.Options.KeepAliveInterval, ct).ConfigureAwait(false);
                    using var call = c.Lease.LeaseKeepAlive(deadline: c.Deadline(), cancellationToken: ct);
                    await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = Volatile.Read(ref _lease) }, ct).ConfigureAwait(false);
                    await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                    var alive = await call.ResponseStream.MoveNext(ct).ConfigureAwait(false) && call.ResponseStream.Current.TTL > 0;
                    if (!alive)
                    {
                        await WriteAsync(ct).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (!ct.IsCancellationRequested && (e is RpcException or IOException or HttpRequestException or InvalidOperationException or OperationCanceledException))
                {
                    Log.KeepAliveFailed(_logger, Key, e.Message);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        /// <summary>Deletes the key and revokes the lease now (a graceful leave); failures leave it to expire.</summary>
        public async Task DeleteAsync()
        {
            if (Interlocked.Exchange(ref _deleted, 1) != 0)
            {
                return;
            }
            await _stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            var c = _owner._connection;
            try
            {
                await c.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = _key }, deadline: c.Deadline()).ConfigureAwait(false);
                await c.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = Volatile.Read(ref _lease) }, deadline: c.Deadline()).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RpcException or IOException or HttpRequestException or InvalidOperationException or OperationCanceledException)
            {
                Log.KeepAliveFailed(_logger, Key, $"delete failed, the key expires with its lease: {e.Message}");
            }
        }

        public async ValueTask DisposeAsync()
        {
            await DeleteAsync().ConfigureAwait(false);
            _stop.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(40, LogLevel.Warning, "etcd key {Key}: {Message}")]
        public static partial void KeepAliveFailed(ILogger logger, string key, string message);
    }
}
