using static Tandem.Runtime.Etcd.Tests.TestWorkers;

namespace Tandem.Runtime.Etcd.Tests;

/// <summary>Each test kills its own etcd and starts it again under the same Tandem objects.</summary>
public sealed class EtcdRestartTests
{
    private readonly CancellationToken _ct = TestContext.Current.CancellationToken;

    [Fact]
    public async Task EtcdRestart_SameDataDir_RegistrationAndDiscoveryRecover()
    {
        await using var server = await EtcdServer.StartAsync(EtcdServer.RequireBinary());
        var options = Options(server, ttlSeconds: 2);
        var logger = new ListLogger();
        await using var discovery = new EtcdDiscovery(options, logger);
        await using var a = await EtcdRegistration.StartAsync(options, Worker("a"), logger, _ct);
        await discovery.WaitForAsync(s => s.Has("a"), TimeSpan.FromSeconds(5), _ct);

        await server.KillAsync();
        await Task.Delay(TimeSpan.FromSeconds(1), _ct);
        Assert.True(discovery.Current.Has("a"), "the last known workers stay listed while etcd is away");
        Assert.False(discovery.IsConnected);
        await server.StartAgainAsync();

        // A worker registered after the restart shows up: the watch is back without restarting the discovery.
        await using var b = await EtcdRegistration.StartAsync(options, Worker("b"), logger, _ct);
        await discovery.WaitForAsync(s => s.Has("a") && s.Has("b"), TimeSpan.FromSeconds(10), _ct);
        Assert.True(discovery.Loads >= 2, $"loads {discovery.Loads}");
        // Worker a's refreshes resumed: it outlives several TTLs.
        await Task.Delay(options.LeaseTtl * 2, _ct);
        Assert.True(discovery.Current.Has("a"));
        Assert.Equal(RegistrationState.Registered, a.State);

        await a.DeregisterAsync(_ct);
        var snapshot = await discovery.WaitForAsync(s => !s.Has("a"), TimeSpan.FromSeconds(2), _ct);
        Assert.Equal("b", Assert.Single(snapshot.Instances).InstanceId);
    }

    [Fact]
    public async Task EtcdRestart_DataLost_WorkerRegistersItselfAgain()
    {
        await using var server = await EtcdServer.StartAsync(EtcdServer.RequireBinary());
        var options = Options(server, ttlSeconds: 2);
        var logger = new ListLogger();
        await using var discovery = new EtcdDiscovery(options, logger);
        await using var a = await EtcdRegistration.StartAsync(options, Worker("a"), logger, _ct);
        await discovery.WaitForAsync(s => s.Has("a"), TimeSpan.FromSeconds(5), _ct);

        await server.KillAsync();
        await server.StartAgainAsync(wipeData: true); // a fresh cluster: the lease and the keys are gone

        // The discovery can see the new key a moment before the registration marks itself Registered: wait for both.
        await Eventually(() => discovery.Current.Has("a") && a.Registrations >= 2 && discovery.Loads >= 2 && a.State == RegistrationState.Registered, TimeSpan.FromSeconds(10),
            "the worker registers again and the discovery reloads");
        var snapshot = discovery.Current;
        AssertSame(a.Instance, Assert.Single(snapshot.Instances));
    }
}
