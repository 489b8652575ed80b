using Tandem.Orchestrator.Backends;
using Tandem.Orchestrator.Config;

namespace Tandem.Orchestrator.Tests;

public class RouterTests
{
    private static ServerPool Pool(RouterType type, int n)
    {
        var pool = new ServerPool("generation", ServerRouters.Create(new RouterConfig(type)));
        for (var i = 0; i < n; i++)
        {
            pool.Add(new Uri($"http://127.0.0.1:{9000 + i}/"));
        }
        return pool;
    }

    [Fact]
    public void RoundRobin_CyclesThroughServers()
    {
        var pool = Pool(RouterType.RoundRobin, 3);
        var picks = Enumerable.Range(0, 6).Select(_ => pool.Pick(RouteHint.None)!.Url.Port).ToArray();
        Assert.Equal([9000, 9001, 9002, 9000, 9001, 9002], picks);
    }

    [Fact]
    public void LoadBalancing_PicksTheLeastBusyServer()
    {
        var pool = Pool(RouterType.LoadBalancing, 3);
        pool.Servers[0].Enter(1);
        pool.Servers[0].Enter(1);
        pool.Servers[2].Enter(1);
        Assert.Equal(9001, pool.Pick(RouteHint.None)!.Url.Port);
    }

    [Fact]
    public void KvCacheAware_SendsASharedPrefixToTheSameServer()
    {
        var pool = Pool(RouterType.KvCacheAware, 3);
        var a = new RouteHint(100, [1, 2, 3]);
        var first = pool.Pick(a)!;
        first.Enter(1); // busy, but the prefix match outweighs one request in flight
        Assert.Same(first, pool.Pick(new RouteHint(120, [1, 2, 3, 4]))!);
        var other = pool.Pick(new RouteHint(100, [7, 8]))!;
        Assert.NotSame(first, other);
    }

    [Fact]
    public void Pick_SkipsUnhealthyAndExcludedServers_ButNeverReturnsNothingWhileOneIsLeft()
    {
        var pool = Pool(RouterType.RoundRobin, 2);
        pool.Servers[0].ReportUnreachable();
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(9001, pool.Pick(RouteHint.None)!.Url.Port);
        }
        Assert.Equal(9000, pool.Pick(RouteHint.None, [pool.Servers[1]])!.Url.Port);
        Assert.Null(pool.Pick(RouteHint.None, [.. pool.Servers]));
        pool.Servers[1].ReportUnreachable();
        Assert.NotNull(pool.Pick(RouteHint.None));
    }

    [Fact]
    public void HealthFailures_TwoInARowTakeAServerOut_APassBringsItBack()
    {
        var server = new BackendServer(new Uri("http://127.0.0.1:1/"));
        Assert.Equal(1, server.ReportUnhealthy());
        Assert.True(server.Healthy);
        Assert.Equal(2, server.ReportUnhealthy());
        Assert.False(server.Healthy);
        server.ReportHealthy();
        Assert.True(server.Healthy);
        Assert.Equal(0, server.ConsecutiveFailures);
    }
}
