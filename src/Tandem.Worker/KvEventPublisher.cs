using Tandem.Abstractions;
using Tandem.Engine.Serving;

namespace Tandem.Worker;

/// <summary>
/// Publishes a worker's KV events (<c>tandem.{ns}.kv_events.{instance_id}</c>, in batches, in order) and load reports
/// (<c>tandem.{ns}.load.{instance_id}</c>, every <see cref="LoadInterval"/>), and answers snapshot requests
/// (<c>tandem.{ns}.kv_snapshot.{instance_id}</c>) from routers that missed events. It is the engine's only KV event reader.
/// </summary>
public sealed class KvEventPublisher : IAsyncDisposable
{
    private const int MaxBatch = 256;
    private readonly ServingEngine _engine;
    private readonly IEventBus _bus;
    private readonly string _ns;
    private readonly string _instanceId;
    private readonly CancellationTokenSource _stop = new();
    private Task _tasks = Task.CompletedTask;
    private long _published;

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
                await _bus.PublishAsync(subject, KvEventCodec.EncodeEvents(batch), cancellationToken: _stop.Token).ConfigureAwait(false);
                Interlocked.Add(ref _published, batch.Count);
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
                await _bus.PublishAsync(subject, KvEventCodec.EncodeLoad(WorkerLoad.From(_engine.GetStats())), cancellationToken: _stop.Token).ConfigureAwait(false);
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
                        await _bus.PublishAsync(replyTo, KvEventCodec.EncodeSnapshot(_engine.KvSnapshot()), cancellationToken: _stop.Token).ConfigureAwait(false);
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
}
