using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;
using Tandem.Engine.Serving;

namespace Tandem.Worker;

/// <summary>
/// Publishes a worker's KV events (<c>tandem.{ns}.kv_events.{instance_id}</c>, in batches, in order) and load reports
/// (<c>tandem.{ns}.load.{instance_id}</c>, every <see cref="LoadInterval"/>), and answers snapshot requests
/// (<c>tandem.{ns}.kv_snapshot.{instance_id}</c>) from routers that missed events. It is the engine's only KV event reader.
/// While the bus is disconnected (<see cref="IEventBus.IsConnected"/>) or refuses a publish, events are dropped and
/// counted (<see cref="Dropped"/>) instead of blocking the reader: the gap in event ids makes routers ask for a snapshot
/// once the bus is back.
/// </summary>
public sealed partial class KvEventPublisher : IAsyncDisposable
{
    private const int MaxBatch = 256;
    private readonly ServingEngine _engine;
    private readonly IEventBus _bus;
    private readonly string _ns;
    private readonly string _instanceId;
    private readonly CancellationTokenSource _stop = new();
    private Task _tasks = Task.CompletedTask;
    private long _published;
    private long _dropped;
    private bool _dropping;

    public KvEventPublisher(ServingEngine engine, string instanceId, IEventBus bus, string ns = EventSubjects.DefaultNamespace)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _instanceId = instanceId ?? throw new ArgumentNullException(nameof(instanceId));
        _bus = bus ?? throw new ArgumentNullException(nameof(bus));
        _ns = ns;
    }

    public TimeSpan LoadInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>KV events published so far.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>KV events dropped because the bus was disconnected or refused them.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Where drops (once per outage) and recoveries are logged.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>Starts publishing; returns once the snapshot responder listens.</summary>
    public async Task StartAsync()
    {
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _tasks = Task.WhenAll(Task.Run(EventsAsync), Task.Run(LoadAsync), Task.Run(() => SnapshotsAsync(ready)));
        await ready.Task.ConfigureAwait(false);
    }

    private async Task EventsAsync()
    {
        var subject = EventSubjects.KvEvents(_ns, _instanceId);
        var batch = new List<KvEvent>(MaxBatch);
        try
        {
            await foreach (var first in _engine.ReadKvEventsAsync(_stop.Token).ConfigureAwait(false))
            {
                batch.Add(first);
                while (batch.Count < MaxBatch && _engine.Blocks.TryReadEvent(out var more) && more is not null)
                {
                    batch.Add(more);
                }
                if (await TryPublishAsync(subject, KvEventCodec.EncodeEvents(batch)).ConfigureAwait(false))
                {
                    Interlocked.Add(ref _published, batch.Count);
                }
                else
                {
                    Interlocked.Add(ref _dropped, batch.Count);
                }
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped.
        }
    }

    private async Task LoadAsync()
    {
        var subject = EventSubjects.Load(_ns, _instanceId);
        using var timer = new PeriodicTimer(LoadInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                // A load report is stale by the next tick: never buffered for a reconnect.
                await TryPublishAsync(subject, KvEventCodec.EncodeLoad(WorkerLoad.From(_engine.GetStats())), logDrops: false).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped.
        }
    }

    private async Task SnapshotsAsync(TaskCompletionSource ready)
    {
        try
        {
            var subscription = _bus.SubscribeAsync(EventSubjects.KvSnapshot(_ns, _instanceId), cancellationToken: _stop.Token).GetAsyncEnumerator(_stop.Token);
            await using (subscription.ConfigureAwait(false))
            {
                var next = subscription.MoveNextAsync();
                ready.TrySetResult();
                while (await next.ConfigureAwait(false))
                {
                    if (subscription.Current.ReplyTo is { } replyTo)
                    {
                        await TryPublishAsync(replyTo, KvEventCodec.EncodeSnapshot(_engine.KvSnapshot()), logDrops: false).ConfigureAwait(false);
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

    /// <summary>Publishes unless the bus is down; false (and logged once per outage) when the message was not sent.</summary>
    private async Task<bool> TryPublishAsync(string subject, ReadOnlyMemory<byte> payload, bool logDrops = true)
    {
        string? reason = null;
        if (!_bus.IsConnected)
        {
            reason = "the event bus is disconnected";
        }
        else
        {
            try
            {
                await _bus.PublishAsync(subject, payload, cancellationToken: _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                reason = e.Message;
            }
        }
        if (logDrops)
        {
            if (reason is not null && !_dropping)
            {
                _dropping = true;
                Log.Dropping(Logger, _instanceId, reason);
            }
            else if (reason is null && _dropping)
            {
                _dropping = false;
                Log.Resumed(Logger, _instanceId, Dropped);
            }
        }
        return reason is null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _tasks.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
        _stop.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "worker {Id}: dropping KV events until the event bus is back ({Reason})")]
        public static partial void Dropping(ILogger logger, string id, string reason);

        [LoggerMessage(2, LogLevel.Information, "worker {Id}: publishing KV events again ({Dropped} dropped so far)")]
        public static partial void Resumed(ILogger logger, string id, long dropped);
    }
}
