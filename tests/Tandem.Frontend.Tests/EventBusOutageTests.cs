using Tandem.Abstractions;
using Tandem.Engine.Serving;
using Tandem.Engine.Serving.Mocker;
using Tandem.Routing.Kv;
using Tandem.Runtime;
using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>
/// The event plane going away and coming back, with a bus whose connection the test switches: a decode worker does
/// not wait for the prefill queue, the KV event publisher drops (and counts) instead of blocking, and the router
/// resyncs from a snapshot once events flow again.
/// </summary>
public class EventBusOutageTests
{
    /// <summary>An in-memory bus that can be "disconnected": publishes and requests then fail like NATS during an outage.</summary>
    private sealed class SwitchableBus : IEventBus
    {
        private readonly InMemoryEventBus _inner = new();

        public bool IsConnected { get; set; } = true;

        public ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> payload, string? replyTo = null, CancellationToken cancellationToken = default) =>
            IsConnected ? _inner.PublishAsync(subject, payload, replyTo, cancellationToken) : throw new BusUnavailableException("disconnected (test)");

        public IAsyncEnumerable<BusMessage> SubscribeAsync(string subject, string? queueGroup = null, CancellationToken cancellationToken = default) =>
            _inner.SubscribeAsync(subject, queueGroup, cancellationToken);

        public Task<BusMessage> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default) =>
            IsConnected ? _inner.RequestAsync(subject, payload, timeout, cancellationToken) : throw new BusUnavailableException("disconnected (test)");
    }

    private sealed class Workers(params WorkerInstance[] instances) : IDiscovery
    {
        public DiscoverySnapshot Current { get; } = new(instances, 1);

        public event Action<DiscoverySnapshot>? Changed { add { } remove { } }
    }

    private static ServingEngine Mocker() => ServingEngine.CreateMocker(
        MockerProfile.Default with { SpeedupRatio = 1000, Model = MockerProfile.Default.Model with { VocabSize = 512 } },
        new ServingOptions { BlockSize = 16, NumKvBlocks = 64, MaxNumSeqs = 4 });

    private static int[] Prompt(int seed) => [.. Enumerable.Range(0, 200).Select(i => 300 + ((i * 13) + (seed * 101)) % 200)];

    private static async Task DrainAsync(IAsyncEnumerable<TokenOutput> tokens)
    {
        await foreach (var _ in tokens.WithCancellation(TestContext.Current.CancellationToken))
        {
        }
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.True(condition());
    }

    [Fact]
    public async Task DecodeWorker_BusDisconnected_PrefillsLocallyAtOnce_WithReasonBusUnavailable()
    {
        var bus = new SwitchableBus { IsConnected = false };
        var prefill = new WorkerInstance { InstanceId = "p0", Role = WorkerRole.Prefill, Model = "m" };
        await using var worker = new EngineWorker(Mocker(), new WorkerInstance { InstanceId = "d0", Role = WorkerRole.Decode, Model = "m" }, new WorkerServices
        {
            Bus = bus,
            Transports = [],
            KvAddress = "inproc://d0",
            Discovery = new Workers(prefill),
            Options = new DisaggregationOptions { MaxLocalPrefillLength = 8, RemotePrefillTimeout = TimeSpan.FromMinutes(5) },
        });
        var started = DateTime.UtcNow;
        await DrainAsync(worker.GenerateAsync(new GenerateRequest { RequestId = "r1", PromptTokens = Prompt(1), MaxTokens = 4 }));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromMinutes(1), "the request waited for the prefill queue");
        var stats = await worker.GetStatsAsync(TestContext.Current.CancellationToken);
        Assert.Equal(1, stats.PrefillFallbacks.GetValueOrDefault("bus_unavailable"));
        Assert.Equal(1, stats.LocalPrefills);
        Assert.Equal(0, stats.RemotePrefills);
    }

    [Fact]
    public async Task Publisher_DropsAndCountsWhileDisconnected_RouterResyncsWhenEventsFlowAgain()
    {
        using var engine = Mocker();
        var bus = new SwitchableBus();
        await using var publisher = new KvEventPublisher(engine, "w0", bus);
        await publisher.StartAsync();
        var index = new KvIndexer();
        await using var subscriber = new KvEventSubscriber(bus, index, new Workers(new WorkerInstance { InstanceId = "w0", Role = WorkerRole.Both, Model = "m" }));
        await subscriber.StartAsync();
        await DrainAsync(engine.SubmitAsync(new GenerateRequest { RequestId = "a", PromptTokens = Prompt(1), MaxTokens = 2 }, TestContext.Current.CancellationToken));
        await WaitFor(() => publisher.Published > 0 && index.LastEventId("w0") == engine.KvSnapshot().LastEventId);

        // Outage: the engine keeps serving; its events are dropped and counted, nothing blocks.
        bus.IsConnected = false;
        var published = publisher.Published;
        for (var i = 2; i < 6; i++)
        {
            await DrainAsync(engine.SubmitAsync(new GenerateRequest { RequestId = $"b{i}", PromptTokens = Prompt(i), MaxTokens = 2 }, TestContext.Current.CancellationToken));
        }
        await WaitFor(() => publisher.Dropped > 0);
        Assert.Equal(published, publisher.Published);

        // Back: the next events show a gap; the router fetches a snapshot and matches the engine again.
        bus.IsConnected = true;
        await DrainAsync(engine.SubmitAsync(new GenerateRequest { RequestId = "c", PromptTokens = Prompt(9), MaxTokens = 2 }, TestContext.Current.CancellationToken));
        await WaitFor(() => subscriber.Counters.Resyncs >= 1 && index.LastEventId("w0") == engine.KvSnapshot().LastEventId);
        Assert.Equal(engine.KvSnapshot().Blocks.Count, index.WorkerBlockCount("w0"));
        Assert.True(subscriber.Counters.Gaps >= 1);
        Assert.True(subscriber.Received > 0);
    }
}
