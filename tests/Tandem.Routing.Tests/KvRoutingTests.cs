using Tandem.Abstractions;
using Tandem.Routing.Kv;

namespace Tandem.Routing.Tests;

public class KvRoutingTests
{
    private sealed class StaticDiscovery(params WorkerInstance[] workers) : IDiscovery
    {
        public DiscoverySnapshot Current { get; set; } = new(workers, 1);

        public event Action<DiscoverySnapshot>? Changed;

        public void Set(params WorkerInstance[] w)
        {
            Current = new(w, Current.Version + 1);
            Changed?.Invoke(Current);
        }
    }

    private const int Bs = 4;

    private static WorkerInstance W(string id) => new() { InstanceId = id, Role = WorkerRole.Both, Model = "m", KvBlockSize = Bs };

    private static int[] Prompt(int blocks, int salt = 0) => [.. Enumerable.Range(0, blocks * Bs).Select(i => ((i * 7) + salt) % 500)];

    private static void Store(KvIndexer index, string worker, int[] tokens, long id = 1)
    {
        var hashes = BlockHashing.SequenceHashes(tokens, Bs);
        index.Apply(worker, new KvBlocksStored(id, null, [.. hashes.Select(h => new KvStoredBlock(h, 0))]));
    }

    [Fact]
    public void Kv_PicksTheWorkerWithTheOverlap()
    {
        var index = new KvIndexer();
        var prompt = Prompt(8);
        Store(index, "b", prompt[..(6 * Bs)]);
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b"), W("c")), RoutingPolicies.Create("kv", 1, index));
        for (var i = 0; i < 3; i++)
        {
            using var r = router.Route(new RoutingRequest("r", "m", prompt))!;
            Assert.Equal("b", r.Instance.InstanceId);
        }
        var policy = (KvRoutingPolicy)router.Policy;
        Assert.Equal((24L, 18L), policy.Totals);
    }

    [Fact]
    public void Kv_LoadTermSpreadsRequestsWithoutOverlap()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b"), W("c")), RoutingPolicies.Create("kv", 1));
        var held = Enumerable.Range(0, 6).Select(i => router.Route(new RoutingRequest("r", "m", Prompt(4, i)))!).ToList();
        Assert.Equal([2, 2, 2], new[] { "a", "b", "c" }.Select(router.ActiveRequests));
        Assert.Equal([8L, 8L, 8L], new[] { "a", "b", "c" }.Select(router.ActiveBlocks));
        held.ForEach(h => h.Dispose());
        Assert.Equal(0, router.ActiveBlocks("a"));
    }

    [Fact]
    public void Kv_OverlapLosesToHeavyLoad()
    {
        var index = new KvIndexer();
        var prompt = Prompt(4);
        Store(index, "a", prompt);
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b")), RoutingPolicies.Create("kv", 1, index));
        // Load "a" with 10 blocks of other work: cost(a) = 0 + 10 > cost(b) = 4 + 0.
        var busy = Enumerable.Range(0, 10).Select(i => router.Route(new RoutingRequest("x", "m", Prompt(1, 99 + i)))!).ToList();
        Assert.True(router.ActiveBlocks("a") >= 4);
        var costA = KvRoutingPolicy.Cost(1, 4, 4, router.ActiveBlocks("a"), router.PrefillBlocks("a"));
        var costB = KvRoutingPolicy.Cost(1, 4, 0, router.ActiveBlocks("b"), router.PrefillBlocks("b"));
        using var r = router.Route(new RoutingRequest("r", "m", prompt))!;
        Assert.Equal(costA < costB ? "a" : "b", r.Instance.InstanceId);
        busy.ForEach(b => b.Dispose());
    }

    [Fact]
    public void Cost_WeighsPrefillAgainstActiveBlocks()
    {
        Assert.Equal(2 * (10 - 4) + 3, KvRoutingPolicy.Cost(2, 10, 4, 3));
        Assert.Equal(3, KvRoutingPolicy.Cost(0, 10, 0, 3));
    }

    [Fact]
    public void Cost_CountsThePendingPrefillQueueAtTheOverlapWeight()
    {
        Assert.Equal(2 * ((10 - 4) + 5) + 3, KvRoutingPolicy.Cost(2, 10, 4, 3, 5));
    }

    [Fact]
    public void Router_TracksPendingPrefillUntilTheFirstToken()
    {
        var index = new KvIndexer();
        var prompt = Prompt(6);
        Store(index, "a", prompt[..(2 * Bs)]);
        var router = new WorkerRouter(new StaticDiscovery(W("a")), RoutingPolicies.Create("kv", 1, index));
        var r = router.Route(new RoutingRequest("r", "m", prompt))!;
        Assert.Equal(4, router.PrefillBlocks("a")); // 6 blocks, 2 cached
        Assert.Equal(6, router.ActiveBlocks("a"));
        r.PrefillCompleted();
        r.PrefillCompleted(); // idempotent
        Assert.Equal(0, router.PrefillBlocks("a"));
        Assert.Equal(6, router.ActiveBlocks("a"));
        r.Dispose();
        r.Dispose();
        Assert.Equal((0L, 0L, 0), (router.ActiveBlocks("a"), router.PrefillBlocks("a"), router.ActiveRequests("a")));
    }

    [Fact]
    public void Router_DisposeBeforeTheFirstTokenClearsThePendingPrefill()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a")), RoutingPolicies.Create("round-robin"));
        var r = router.Route(new RoutingRequest("r", "m", Prompt(3)))!;
        Assert.Equal((3L, 3L), (router.ActiveBlocks("a"), router.PrefillBlocks("a")));
        r.Dispose();
        r.PrefillCompleted();
        Assert.Equal((0L, 0L), (router.ActiveBlocks("a"), router.PrefillBlocks("a")));
    }

    [Fact]
    public void Router_CountsBlocksSharedByRequestsInFlightOnce()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a")), RoutingPolicies.Create("kv", 1));
        var shared = Prompt(4);
        var first = router.Route(new RoutingRequest("r1", "m", shared))!;
        // Same 4-block prefix plus 2 blocks of its own and a partial block (which has no hash and counts alone).
        var second = router.Route(new RoutingRequest("r2", "m", [.. shared, .. Prompt(2, 7), 1, 2]))!;
        Assert.Equal(4 + 2 + 1, router.ActiveBlocks("a"));
        first.Dispose();
        Assert.Equal(4 + 2 + 1, router.ActiveBlocks("a"));
        second.Dispose();
        Assert.Equal(0, router.ActiveBlocks("a"));
    }

    [Fact]
    public void Kv_AvoidsAWorkerWhosePrefillQueueOutweighsTheOverlap()
    {
        var index = new KvIndexer();
        var prompt = Prompt(4);
        Store(index, "a", prompt);
        var policy = RoutingPolicies.Create("kv", 1, index);
        var request = new RoutingRequest("r", "m", prompt);
        var idle = policy.Choose(request, [new RoutingCandidate(W("a"), 0, 0), new RoutingCandidate(W("b"), 0, 0)]);
        Assert.Equal(("a", 4), (idle.Instance.InstanceId, idle.CachedBlocks));
        Assert.Equal(BlockHashing.SequenceHashes(prompt, Bs), idle.BlockHashes);
        // "a" holds the whole prompt but has 10 blocks of other prompts to prefill first: cost 10 against 4 on "b".
        var queued = policy.Choose(request, [new RoutingCandidate(W("a"), 3, 0) { PrefillBlocks = 10 }, new RoutingCandidate(W("b"), 0, 0)]);
        Assert.Equal(("b", 0), (queued.Instance.InstanceId, queued.CachedBlocks));
    }

    [Fact]
    public void ArgMin_TiesBrokenUniformly()
    {
        var random = new Random(3);
        var counts = new int[3];
        for (var i = 0; i < 3000; i++)
        {
            counts[KvRoutingPolicy.ArgMin([1.0, 1.0, 1.0, 2.0], random) % 3]++;
        }
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
    }

    [Fact]
    public void Temperature_SamplesTheSoftmaxDistribution()
    {
        double[] costs = [0, 5, 10];
        var p = KvRoutingPolicy.Probabilities(costs, 0.5);
        // exp(-(c - min) / (max × T)): 1, e^-1, e^-2, normalized.
        var z = 1 + Math.Exp(-1) + Math.Exp(-2);
        Assert.Equal(1 / z, p[0], 9);
        Assert.Equal(Math.Exp(-1) / z, p[1], 9);
        var random = new Random(7);
        var counts = new int[3];
        const int N = 20000;
        for (var i = 0; i < N; i++)
        {
            counts[KvRoutingPolicy.Sample(costs, 0.5, random)]++;
        }
        for (var i = 0; i < 3; i++)
        {
            Assert.InRange(counts[i] / (double)N, p[i] - 0.02, p[i] + 0.02);
        }
        // A low temperature is nearly argmin; a high one nearly uniform.
        Assert.True(KvRoutingPolicy.Probabilities(costs, 0.01)[0] > 0.999);
        Assert.All(KvRoutingPolicy.Probabilities(costs, 100), x => Assert.InRange(x, 0.32, 0.35));
    }

    [Fact]
    public void Kv_SaltedRequestDoesNotMatchUnsaltedBlocks()
    {
        var index = new KvIndexer();
        var prompt = Prompt(4);
        Store(index, "b", prompt);
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b")), RoutingPolicies.Create("kv", 1, index));
        Assert.Equal("b", router.Route(new RoutingRequest("r", "m", prompt))!.Instance.InstanceId);
        var policy = (KvRoutingPolicy)router.Policy;
        var before = policy.Totals.OverlapBlocks;
        router.Route(new RoutingRequest("r", "m", prompt, CacheSalt: "tenant"));
        Assert.Equal(before, policy.Totals.OverlapBlocks);
    }

    private sealed class FakeSnapshots(Func<string, KvCacheSnapshot> make) : IKvSnapshotSource
    {
        public int Calls { get; private set; }

        public Task<KvCacheSnapshot> GetSnapshotAsync(string instanceId, CancellationToken cancellationToken = default)
        {
            Calls++;
            return Task.FromResult(make(instanceId));
        }
    }

    private sealed class NoBus : IEventBus
    {
        public ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> payload, string? replyTo = null, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public IAsyncEnumerable<BusMessage> SubscribeAsync(string subject, string? queueGroup = null, CancellationToken cancellationToken = default) => AsyncEnumerable.Empty<BusMessage>();

        public Task<BusMessage> RequestAsync(string subject, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default) => throw new NoRespondersException(subject);
    }

    private static BusMessage Msg(string worker, params KvEvent[] events) => new($"tandem.default.kv_events.{worker}", KvEventCodec.EncodeEvents(events));

    [Fact]
    public async Task Subscriber_GapTriggersSnapshotResync_ThenAppliesLaterEvents()
    {
        var index = new KvIndexer();
        var snapshots = new FakeSnapshots(_ => new KvCacheSnapshot(5, Bs, [new KvSnapshotBlock(50, null, 0), new KvSnapshotBlock(51, 50, 0)]));
        var discovery = new StaticDiscovery(W("a"), W("b"));
        await using var sub = new KvEventSubscriber(new NoBus(), index, discovery, snapshots: snapshots);
        await sub.HandleEventsAsync(Msg("a", new KvBlocksStored(1, null, [new(1, 0)]), new KvBlocksStored(2, 1, [new(2, 0)])), TestContext.Current.CancellationToken);
        Assert.Equal(2, index.Overlap("a", [1, 2]));
        Assert.Equal(0, snapshots.Calls);
        // Events 3..4 lost; 6 arrives: snapshot (as of 5), then 6 on top.
        await sub.HandleEventsAsync(Msg("a", new KvBlocksStored(6, 51, [new(52, 0)])), TestContext.Current.CancellationToken);
        Assert.Equal(1, snapshots.Calls);
        Assert.Equal(0, index.Overlap("a", [1, 2]));
        Assert.Equal(3, index.Overlap("a", [50, 51, 52]));
        Assert.Equal((3L, 1L, 1L, 0L), sub.Counters);
        // A late joiner whose first event is not 1 is resynced too.
        await sub.HandleEventsAsync(Msg("b", new KvBlocksRemoved(9, [50])), TestContext.Current.CancellationToken);
        Assert.Equal(2, snapshots.Calls);
        Assert.Equal(2, index.Overlap("b", [50, 51]));
        // Malformed payloads are counted and skipped.
        await sub.HandleEventsAsync(new BusMessage("tandem.default.kv_events.a", "{nope"u8.ToArray()), TestContext.Current.CancellationToken);
        Assert.Equal(1, sub.Counters.Malformed);
    }

    [Fact]
    public async Task Subscriber_WorkerLeavingDiscovery_IsRemovedFromTheIndex()
    {
        var index = new KvIndexer();
        var discovery = new StaticDiscovery(W("a"), W("b"));
        await using var sub = new KvEventSubscriber(new NoBus(), index, discovery);
        await sub.StartAsync();
        await sub.HandleEventsAsync(Msg("a", new KvBlocksStored(1, null, [new(1, 0)])), TestContext.Current.CancellationToken);
        await sub.HandleEventsAsync(Msg("b", new KvBlocksStored(1, null, [new(1, 0)])), TestContext.Current.CancellationToken);
        discovery.Set(W("b"));
        Assert.Equal(["b"], index.Workers);
        Assert.Equal(1, index.Overlap("b", [1]));
    }

    [Fact]
    public void Codec_RoundTripsEventsSnapshotsAndLoad()
    {
        KvEvent[] events = [new KvBlocksStored(1, null, [new(ulong.MaxValue, 3)]), new KvBlocksStored(2, ulong.MaxValue, [new(4, 5)]), new KvBlocksRemoved(3, [4, ulong.MaxValue]), new KvCacheCleared(4)];
        var decoded = KvEventCodec.DecodeEvents(KvEventCodec.EncodeEvents(events));
        Assert.Equal(4, decoded.Count);
        Assert.Equal(ulong.MaxValue, ((KvBlocksStored)decoded[1]).ParentHash);
        Assert.Equal(events[0].EventId, decoded[0].EventId);
        Assert.Equal(((KvBlocksStored)events[0]).Blocks, ((KvBlocksStored)decoded[0]).Blocks);
        Assert.Equal(((KvBlocksRemoved)events[2]).BlockHashes, ((KvBlocksRemoved)decoded[2]).BlockHashes);
        Assert.IsType<KvCacheCleared>(decoded[3]);
        var snap = new KvCacheSnapshot(9, 16, [new KvSnapshotBlock(1, null, 2), new KvSnapshotBlock(3, 1, 4)]);
        var s2 = KvEventCodec.DecodeSnapshot(KvEventCodec.EncodeSnapshot(snap));
        Assert.Equal(snap.Blocks, s2.Blocks);
        Assert.Equal(9, s2.LastEventId);
        var load = new WorkerLoad { ActiveSequences = 3, Waiting = 2, KvBlocksUsed = 10, KvBlocksTotal = 40 };
        Assert.Equal(load, KvEventCodec.DecodeLoad(KvEventCodec.EncodeLoad(load)));
        var random = new Random(1);
        for (var i = 0; i < 200; i++)
        {
            var bytes = new byte[random.Next(0, 64)];
            random.NextBytes(bytes);
            Assert.Throws<FormatException>(() => KvEventCodec.DecodeEvents(bytes));
        }
    }
}
