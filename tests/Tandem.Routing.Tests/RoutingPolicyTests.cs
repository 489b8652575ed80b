using Tandem.Abstractions;

namespace Tandem.Routing.Tests;

public class RoutingPolicyTests
{
    private sealed class StaticDiscovery(params WorkerInstance[] workers) : IDiscovery
    {
        public DiscoverySnapshot Current { get; } = new(workers, 1);

        public event Action<DiscoverySnapshot>? Changed { add { } remove { } }
    }

    private static WorkerInstance W(string id, WorkerRole role = WorkerRole.Both) => new() { InstanceId = id, Role = role, Model = "m" };

    private static RoutingRequest R => new("r", "m", [1, 2, 3]);

    [Fact]
    public void RoundRobin_CyclesThroughDecodeWorkersOnly()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("p", WorkerRole.Prefill), W("b", WorkerRole.Decode)), RoutingPolicies.Create("round-robin"));
        var picks = Enumerable.Range(0, 4).Select(_ =>
        {
            using var r = router.Route(R)!;
            return r.Instance.InstanceId;
        });
        Assert.Equal(["a", "b", "a", "b"], picks);
    }

    [Fact]
    public void RoundRobin_PrefillPicksDoNotAdvanceTheDecodeTurn()
    {
        // Prefill-first: each request picks a prefill worker, then a decode worker.
        var router = new WorkerRouter(new StaticDiscovery(W("p", WorkerRole.Prefill), W("d0", WorkerRole.Decode), W("d1", WorkerRole.Decode)), RoutingPolicies.Create("round-robin"));
        var decodes = Enumerable.Range(0, 4).Select(_ =>
        {
            using var p = router.RoutePrefill(R)!;
            Assert.Equal("p", p.Instance.InstanceId);
            using var d = router.Route(R)!;
            return d.Instance.InstanceId;
        });
        Assert.Equal(["d0", "d1", "d0", "d1"], decodes);
    }

    [Fact]
    public void LeastLoaded_PicksFewestActive_AndDisposeReleases()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b"), W("c")), RoutingPolicies.Create("least-loaded"));
        var held = Enumerable.Range(0, 6).Select(_ => router.Route(R)!).ToList();
        Assert.Equal([2, 2, 2], new[] { "a", "b", "c" }.Select(router.ActiveRequests));
        held.Where(h => h.Instance.InstanceId == "b").ToList().ForEach(h => h.Dispose());
        held[0].Dispose();
        held[0].Dispose(); // idempotent
        Assert.Equal(0, router.ActiveRequests("b"));
        using var next = router.Route(R)!;
        Assert.Equal("b", next.Instance.InstanceId);
    }

    [Fact]
    public void LeastLoaded_TieBrokenByKvUsage()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b")), RoutingPolicies.Create("least-loaded"));
        router.ReportKvUsage("a", 0.9);
        router.ReportKvUsage("b", 0.1);
        using var r = router.Route(R)!;
        Assert.Equal("b", r.Instance.InstanceId);
    }

    [Fact]
    public void Random_Seeded_IsReproducibleAndCoversAll()
    {
        string[] Picks(int seed)
        {
            var router = new WorkerRouter(new StaticDiscovery(W("a"), W("b"), W("c")), RoutingPolicies.Create("random", seed));
            return [.. Enumerable.Range(0, 60).Select(_ =>
            {
                using var r = router.Route(R)!;
                return r.Instance.InstanceId;
            })];
        }
        Assert.Equal(Picks(5), Picks(5));
        Assert.Equal(3, Picks(5).Distinct().Count());
    }

    [Fact]
    public void Route_ExcludedOrNoWorkers_ReturnsNull()
    {
        var router = new WorkerRouter(new StaticDiscovery(W("a")), RoutingPolicies.Create("round-robin"));
        Assert.Null(router.Route(R, ["a"]));
        Assert.Null(router.Route(new RoutingRequest("r", "other-model", [1])));
    }

    [Fact]
    public void Create_UnknownName_ListsTheChoices()
    {
        var e = Assert.Throws<ArgumentException>(() => RoutingPolicies.Create("fastest"));
        Assert.Contains("round-robin", e.Message, StringComparison.Ordinal);
    }
}
