using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mvccpb;
using Tandem.Abstractions;

namespace Tandem.Runtime.Etcd;

/// <summary>
/// Discovery backed by etcd: loads every instance record of the namespace, then watches the prefix from the loaded
/// revision + 1 so no change falls between the two. Each batch of changes becomes a new immutable
/// <see cref="DiscoverySnapshot"/> (version + 1) and raises <see cref="Changed"/>. When the connection breaks (etcd
/// restarted, network cut) or etcd reports the watched revision compacted, it reconnects with backoff and reloads
/// everything, publishing a snapshot only if the reload differs. While disconnected, <see cref="Current"/> keeps the
/// last known workers rather than dropping them all.
/// </summary>
public sealed partial class EtcdDiscovery : IDiscovery, IAsyncDisposable
{
    private readonly EtcdDiscoveryOptions _options;
    private readonly EtcdConnection _connection;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly string _instancesPrefix;
    private readonly ByteString _prefixKey;
    private readonly ByteString _prefixEnd;
    private readonly Task _loop;

    /// <summary>Live records by etcd key; touched only by the background loop.</summary>
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    private DiscoverySnapshot _current = DiscoverySnapshot.Empty;
    private long _revision;
    private int _loads;
    private int _connected;
    private bool _disposed;

    /// <summary>Starts loading and watching in the background; <see cref="Current"/> is empty until the first load.</summary>
    public EtcdDiscovery(EtcdDiscoveryOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _instancesPrefix = EtcdKeys.InstancesPrefix(options.Namespace);
        _prefixKey = ByteString.CopyFromUtf8(_instancesPrefix);
        _prefixEnd = ByteString.CopyFrom(EtcdKeys.PrefixRangeEnd(_instancesPrefix));
        _connection = new EtcdConnection(options);
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    public DiscoverySnapshot Current => Volatile.Read(ref _current);

    public event Action<DiscoverySnapshot>? Changed;

    /// <summary>The etcd revision <see cref="Current"/> reflects (0 before the first load).</summary>
    public long Revision => Volatile.Read(ref _revision);

    /// <summary>How many full loads ran: 1 after start, one more after every reconnect or compaction.</summary>
    public int Loads => Volatile.Read(ref _loads);

    /// <summary>Whether the watch is established right now.</summary>
    public bool IsConnected => Volatile.Read(ref _connected) != 0;

    /// <summary>
    /// Waits until a snapshot satisfies <paramref name="predicate"/> (checked against <see cref="Current"/> first) and
    /// returns it; throws <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    public async Task<DiscoverySnapshot> WaitForAsync(
        Func<DiscoverySnapshot, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var found = new TaskCompletionSource<DiscoverySnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(DiscoverySnapshot snapshot)
        {
            if (predicate(snapshot))
            {
                found.TrySetResult(snapshot);
            }
        }
        Changed += OnChanged;
        try
        {
            var current = Current;
            if (predicate(current))
            {
                return current;
            }
            try
            {
                return await found.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"discovery did not reach the expected state within {timeout} (version {Current.Version}, " +
                    $"{Current.Instances.Count} instance(s): {string.Join(", ", Current.Instances.Select(i => i.InstanceId))})");
            }
        }
        finally
        {
            Changed -= OnChanged;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _connection.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync()
    {
        var ct = _stop.Token;
        var delay = _options.MinReconnectDelay;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var revision = await LoadAsync(ct).ConfigureAwait(false);
                delay = _options.MinReconnectDelay;
                var outcome = await WatchAsync(revision + 1, () => delay = _options.MinReconnectDelay, ct).ConfigureAwait(false);
                Log.Resync(_logger, _options.Namespace, outcome);
                if (outcome.StartsWith("compacted", StringComparison.Ordinal))
                {
                    continue; // the history is gone but etcd is up: reload at once
                }
            }
            catch (Exception ex)
            {
                if (ct.IsCancellationRequested)
                {
                    break;
                }
                Log.ConnectionLost(_logger, _options.Namespace, delay, ex);
            }
            finally
            {
                Volatile.Write(ref _connected, 0);
            }
            try
            {
                await Task.Delay(delay, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            delay = EtcdRegistration.NextDelay(delay, _options);
        }
    }

    /// <summary>Reads the whole prefix, replaces the state with it and publishes if anything differs.</summary>
    internal async Task<long> LoadAsync(CancellationToken cancellationToken)
    {
        var response = await _connection.Kv.RangeAsync(new RangeRequest { Key = _prefixKey, RangeEnd = _prefixEnd },
            deadline: _connection.Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
        var fresh = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (var kv in response.Kvs)
        {
            if (TryDecode(kv) is { } entry)
            {
                fresh[entry.Key] = entry;
            }
        }
        var changed = fresh.Count != _entries.Count ||
            fresh.Any(pair => !_entries.TryGetValue(pair.Key, out var old) || old.ModRevision != pair.Value.ModRevision);
        _entries.Clear();
        foreach (var pair in fresh)
        {
            _entries[pair.Key] = pair.Value;
        }
        var revision = response.Header.Revision;
        Volatile.Write(ref _revision, revision);
        var loads = Interlocked.Increment(ref _loads);
        Log.Loaded(_logger, _options.Namespace, fresh.Count, revision, loads);
        if (changed || loads == 1)
        {
            Publish();
        }
        return revision;
    }

    /// <summary>
    /// Applies watch events from <paramref name="startRevision"/> until the stream ends. Returns why it ended when
    /// etcd ended it (compaction, cancellation); throws when the connection failed.
    /// </summary>
    internal async Task<string> WatchAsync(long startRevision, Action onCreated, CancellationToken cancellationToken)
    {
        using var call = _connection.Watch.Watch(cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest { Key = _prefixKey, RangeEnd = _prefixEnd, StartRevision = startRevision },
        }, cancellationToken).ConfigureAwait(false);
        while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            var response = call.ResponseStream.Current;
            if (response.CompactRevision != 0)
            {
                return $"compacted at revision {response.CompactRevision} (watch started at {startRevision})";
            }
            if (response.Canceled)
            {
                return $"watch cancelled by etcd: {response.CancelReason}";
            }
            if (response.Created)
            {
                Volatile.Write(ref _connected, 1);
                onCreated();
                Log.Watching(_logger, _options.Namespace, startRevision);
            }
            if (response.Events.Count > 0)
            {
                Apply(response.Events);
            }
            if (response.Header is { Revision: > 0 } header)
            {
                Volatile.Write(ref _revision, header.Revision);
            }
        }
        return "the watch stream ended";
    }

    private void Apply(IEnumerable<Event> events)
    {
        var changed = false;
        foreach (var e in events)
        {
            var key = e.Kv.Key.ToStringUtf8();
            if (e.Type == Event.Types.EventType.Delete)
            {
                changed |= _entries.Remove(key);
            }
            else if (TryDecode(e.Kv) is { } entry)
            {
                _entries[key] = entry;
                changed = true;
            }
            else
            {
                changed |= _entries.Remove(key); // a record overwritten with garbage no longer lists a worker
            }
        }
        if (changed)
        {
            Publish();
        }
    }

    private Entry? TryDecode(KeyValue kv)
    {
        var key = kv.Key.ToStringUtf8();
        try
        {
            var instance = WorkerInstanceCodec.DecodeInstance(kv.Value.Span);
            var expected = EtcdKeys.InstanceKey(_options.Namespace, instance.Component, instance.InstanceId);
            if (!string.Equals(expected, key, StringComparison.Ordinal))
            {
                throw new FormatException($"the record names {expected}");
            }
            return new Entry(key, instance, kv.CreateRevision, kv.ModRevision);
        }
        catch (FormatException ex)
        {
            Log.InvalidRecord(_logger, key, ex.Message);
            return null;
        }
    }

    private void Publish()
    {
        // First-registered order (etcd create revision), as the in-memory discovery keeps registration order.
        var instances = _entries.Values.OrderBy(e => e.CreateRevision).ThenBy(e => e.Key, StringComparer.Ordinal)
            .Select(e => e.Instance).ToArray();
        var next = new DiscoverySnapshot(instances, Current.Version + 1);
        Volatile.Write(ref _current, next);
        var handlers = Changed;
        if (handlers is null)
        {
            return;
        }
        foreach (var handler in handlers.GetInvocationList().Cast<Action<DiscoverySnapshot>>())
        {
            try
            {
                handler(next);
            }
            catch (Exception ex)
            {
                Log.HandlerFailed(_logger, ex);
            }
        }
    }

    private sealed record Entry(string Key, WorkerInstance Instance, long CreateRevision, long ModRevision);
}
