using Tandem.Abstractions;
using Tandem.Engine.Serving;
using Tandem.Engine.Serving.Mocker;
using Tandem.Routing.Kv;
using Tandem.Runtime;
using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>Worker publisher → in-memory bus → router subscriber, including the resync of a router that starts late.</summary>
public class KvEventPlaneTests
{
    private sealed class OneWorker(string id) : IDiscovery
    {
        public DiscoverySnapshot Current { get; } = new([new WorkerInstance { InstanceId = id, Role = WorkerRole.Both, Model = "m" }], 1);

        public event Action<DiscoverySnapshot>? Changed { add { } remove { } }
    }

    private static async Task Generate(ServingEngine engine, int seed)
    {
        var prompt = Enumerable.Range(0, 200).Select(i => 300 + ((i * 13) + (seed * 101)) % 200).ToArray();
        await foreach (var _ in engine.SubmitAsync(new GenerateRequest { RequestId = $"r{seed}", PromptTokens = prompt, MaxTokens = 2 }, TestContext.Current.CancellationToken))
        {
        }
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.True(condition());
    }

    [Fact]
    public async Task LateRouter_ResyncsFromSnapshot_ThenFollowsEvents()
    {
        var profile = MockerProfile.Default with { SpeedupRatio = 1000, Model = MockerProfile.Default.Model with { VocabSize = 512 } };
        using var engine = ServingEngine.CreateMocker(profile, new ServingOptions { BlockSize = 16, NumKvBlocks = 64, MaxNumSeqs = 4 });
        var bus = new InMemoryEventBus();
        await using var publisher = new KvEventPublisher(engine, "w0", bus);
        await publisher.StartAsync();
        // Events published before any router listens are lost to it.
        await Generate(engine, 1);
        await WaitFor(() => publisher.Published > 0);

        var index = new KvIndexer();
        await using var subscriber = new KvEventSubscriber(bus, index, new OneWorker("w0"));
        await subscriber.StartAsync();
        await Generate(engine, 2); // its first event has id > 1: a gap, so the router asks for a snapshot
        await WaitFor(() => subscriber.Counters.Resyncs == 1 && index.LastEventId("w0") == engine.KvSnapshot().LastEventId);
        Assert.Equal(engine.KvSnapshot().Blocks.Count, index.WorkerBlockCount("w0"));

        // Later events apply in order; with 64 blocks the cache evicts, so removals flow too.
        for (var i = 3; i < 12; i++)
        {
            await Generate(engine, i);
        }
        await WaitFor(() => index.LastEventId("w0") == engine.KvSnapshot().LastEventId);
        var snapshot = engine.KvSnapshot();
        Assert.Equal(snapshot.Blocks.Count, index.WorkerBlockCount("w0"));
        foreach (var b in snapshot.Blocks)
        {
            Assert.Equal(1, index.Overlap("w0", [b.BlockHash]));
        }
        Assert.Equal(1, subscriber.Counters.Resyncs);
    }
}
