using Tandem.Abstractions;

namespace Tandem.Routing.Kv;

/// <summary>Asks a worker for its cached set over the event bus (request-reply on <see cref="EventSubjects.KvSnapshot"/>).</summary>
public sealed class BusKvSnapshotSource(IEventBus bus, string ns = EventSubjects.DefaultNamespace, TimeSpan? timeout = null) : IKvSnapshotSource
{
    private readonly TimeSpan _timeout = timeout ?? TimeSpan.FromSeconds(5);

    public async Task<KvCacheSnapshot> GetSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        var reply = await bus.RequestAsync(EventSubjects.KvSnapshot(ns, instanceId), ReadOnlyMemory<byte>.Empty, _timeout, cancellationToken).ConfigureAwait(false);
        return KvEventCodec.DecodeSnapshot(reply.Payload);
    }
}

/// <summary>
/// Keeps a <see cref="KvIndexer"/> current: subscribes to every worker's KV events (<c>tandem.{ns}.kv_events.&gt;</c>),
/// applies them in order, and on a gap in event ids fetches the worker's snapshot and continues from it. It also
/// feeds load reports (<c>tandem.{ns}.load.&gt;</c>) to a <see cref="WorkerRouter"/> and forgets workers that leave
/// discovery.
/// </summary>
public sealed class KvEventSubscriber : IAsyncDisposable
{
    private readonly IEventBus _bus;
    private readonly IDiscovery _discovery;
    private readonly WorkerRouter? _router;
    private readonly string _ns;
    private readonly IKvSnapshotSource _snapshots;
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, DateTime> _lastResyncAttempt = new(StringComparer.Ordinal);
    private Task _events = Task.CompletedTask;
    private Task _load = Task.CompletedTask;
    private long _applied;
    private long _gaps;
    private long _resyncs;
    private long _malformed;
    private long _received;
    private long _dropped;

    public KvEventSubscriber(IEventBus bus, KvIndexer indexer, IDiscovery discovery, WorkerRouter? router = null, string ns = EventSubjects.DefaultNamespace, IKvSnapshotSource? snapshots = null)
    {
        _bus = bus ?? throw new ArgumentNullException(nameof(bus));
        Indexer = indexer ?? throw new ArgumentNullException(nameof(indexer));
        _discovery = discovery ?? throw new ArgumentNullException(nameof(discovery));
        _router = router;
        _ns = ns;
        _snapshots = snapshots ?? new BusKvSnapshotSource(bus, ns);
    }

    public KvIndexer Indexer { get; }

    /// <summary>Events applied, gaps seen, snapshots applied, payloads that did not decode.</summary>
    public (long Applied, long Gaps, long Resyncs, long Malformed) Counters =>
        (Interlocked.Read(ref _applied), Interlocked.Read(ref _gaps), Interlocked.Read(ref _resyncs), Interlocked.Read(ref _malformed));

    /// <summary>KV events decoded from the bus (applied, stale or refused).</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>KV events refused because their worker was out of sync (a gap and no snapshot yet).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Least time between two snapshot requests to the same worker.</summary>
    public TimeSpan ResyncBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Starts listening; returns once the subscriptions are registered.</summary>
    public async Task StartAsync()
    {
        _discovery.Changed += OnDiscoveryChanged;
        var eventsReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loadReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _events = Task.Run(() => EventsLoopAsync(eventsReady));
        _load = Task.Run(() => LoadLoopAsync(loadReady));
        await Task.WhenAll(eventsReady.Task, loadReady.Task).ConfigureAwait(false);
    }

    /// <summary>Applies one bus message of KV events (exposed for tests; the subscription calls it in order).</summary>
    public async Task HandleEventsAsync(BusMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var worker = EventSubjects.LastToken(message.Subject);
        List<KvEvent> events;
        try
        {
            events = KvEventCodec.DecodeEvents(message.Payload);
        }
        catch (FormatException)
        {
            Interlocked.Increment(ref _malformed);
            return;
        }
        Interlocked.Add(ref _received, events.Count);
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            var result = Indexer.Apply(worker, e);
            if (result == KvApplyResult.Gap)
            {
                Interlocked.Increment(ref _gaps);
                if (!await TryResyncAsync(worker, cancellationToken).ConfigureAwait(false))
                {
                    Interlocked.Add(ref _dropped, events.Count - i);
                    return; // still out of sync: later events are refused until a snapshot succeeds
                }
                result = Indexer.Apply(worker, e);
            }
            if (result == KvApplyResult.Applied)
            {
                Interlocked.Increment(ref _applied);
            }
        }
    }

    private async Task<bool> TryResyncAsync(string worker, CancellationToken cancellationToken)
    {
        var now = DateTime.UtcNow;
        if (_lastResyncAttempt.TryGetValue(worker, out var last) && now - last < ResyncBackoff)
        {
            return false;
        }
        _lastResyncAttempt[worker] = now;
        try
        {
            var snapshot = await _snapshots.GetSnapshotAsync(worker, cancellationToken).ConfigureAwait(false);
            Indexer.ApplySnapshot(worker, snapshot);
            Interlocked.Increment(ref _resyncs);
            _lastResyncAttempt.Remove(worker);
            return true;
        }
        catch (Exception e) when (e is TimeoutException or NoRespondersException or BusUnavailableException or FormatException)
        {
            return false;
        }
    }

    private async Task EventsLoopAsync(TaskCompletionSource ready)
    {
        try
        {
            var subscription = _bus.SubscribeAsync(EventSubjects.AllKvEvents(_ns), cancellationToken: _stop.Token).GetAsyncEnumerator(_stop.Token);
            await using (subscription.ConfigureAwait(false))
            {
                var next = subscription.MoveNextAsync();
                ready.TrySetResult();
                while (await next.ConfigureAwait(false))
                {
                    await HandleEventsAsync(subscription.Current, _stop.Token).ConfigureAwait(false);
                    next = subscription.MoveNextAsync();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped.
        }
        finally
        {
            ready.TrySetResult();
        }
    }

    private async Task LoadLoopAsync(TaskCompletionSource ready)
    {
        try
        {
            var subscription = _bus.SubscribeAsync(EventSubjects.AllLoad(_ns), cancellationToken: _stop.Token).GetAsyncEnumerator(_stop.Token);
            await using (subscription.ConfigureAwait(false))
            {
                var next = subscription.MoveNextAsync();
                ready.TrySetResult();
                while (await next.ConfigureAwait(false))
                {
                    var message = subscription.Current;
                    try
                    {
                        _router?.ReportLoad(EventSubjects.LastToken(message.Subject), KvEventCodec.DecodeLoad(message.Payload));
                    }
                    catch (FormatException)
                    {
                        Interlocked.Increment(ref _malformed);
                    }
                    next = subscription.MoveNextAsync();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped.
        }
        finally
        {
            ready.TrySetResult();
        }
    }

    private void OnDiscoveryChanged(DiscoverySnapshot snapshot)
    {
        var live = new HashSet<string>(snapshot.Instances.Select(i => i.InstanceId), StringComparer.Ordinal);
        foreach (var worker in Indexer.Workers)
        {
            if (!live.Contains(worker))
            {
                Indexer.RemoveWorker(worker);
                _router?.ForgetWorker(worker);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _discovery.Changed -= OnDiscoveryChanged;
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_events, _load).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
        _stop.Dispose();
    }
}
