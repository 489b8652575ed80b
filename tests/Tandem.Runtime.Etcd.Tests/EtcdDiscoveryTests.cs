using System.Diagnostics;
using System.Text.Json;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Tandem.Abstractions;
using static Tandem.Runtime.Etcd.Tests.TestWorkers;

namespace Tandem.Runtime.Etcd.Tests;

[Collection("etcd")]
public sealed class EtcdDiscoveryTests(EtcdFixture fixture)
{
    private static readonly TimeSpan OneSecond = TimeSpan.FromSeconds(1);
    private readonly CancellationToken _ct = TestContext.Current.CancellationToken;

    [Fact]
    public async Task Register_Worker_DiscoverySeesAllFieldsWithinOneSecond()
    {
        var options = Options(fixture.Require());
        await using var discovery = new EtcdDiscovery(options);
        await discovery.WaitForAsync(s => s.Version > 0, TimeSpan.FromSeconds(5), _ct);
        var worker = Worker("w1") with
        {
            Endpoints = new Dictionary<string, string> { ["rpc"] = "http://h:1", ["kv"] = "tcp://h:2", ["http"] = "http://h:3" },
        };

        await using var registration = await EtcdRegistration.StartAsync(options, worker, cancellationToken: _ct);
        var snapshot = await discovery.WaitForAsync(s => s.Has("w1"), OneSecond, _ct);

        Assert.Equal(RegistrationState.Registered, registration.State);
        AssertSame(worker, Assert.Single(snapshot.Instances));
        Assert.Equal(["stories260K"], snapshot.Models);
    }

    [Fact]
    public async Task Discovery_StartedAfterRegistration_LoadsExistingWorkers()
    {
        var options = Options(fixture.Require());
        await using var a = await EtcdRegistration.StartAsync(options, Worker("a", role: WorkerRole.Prefill), cancellationToken: _ct);
        await using var b = await EtcdRegistration.StartAsync(options, Worker("b", role: WorkerRole.Decode), cancellationToken: _ct);

        await using var discovery = new EtcdDiscovery(options);
        var snapshot = await discovery.WaitForAsync(s => s.Instances.Count == 2, TimeSpan.FromSeconds(5), _ct);

        Assert.Equal(["a", "b"], snapshot.Instances.Select(i => i.InstanceId)); // first-registered order
        Assert.Equal(["b"], snapshot.DecodeWorkers("stories260K").Select(i => i.InstanceId));
        Assert.Equal(1, discovery.Loads);
        Assert.True(discovery.Revision > 0);
    }

    [Fact]
    public async Task Current_BeforeFirstLoad_IsEmptyAndUsable()
    {
        // Nothing listens on this port: the discovery keeps retrying and Current stays the empty snapshot.
        var options = new EtcdDiscoveryOptions { Endpoints = "http://127.0.0.1:1", RequestTimeout = TimeSpan.FromMilliseconds(200) };
        await using var discovery = new EtcdDiscovery(options);

        Assert.Same(DiscoverySnapshot.Empty, discovery.Current);
        Assert.Empty(discovery.Current.Instances);
        Assert.False(discovery.IsConnected);
        await Assert.ThrowsAsync<TimeoutException>(() => discovery.WaitForAsync(s => s.Version > 0, TimeSpan.FromMilliseconds(300), _ct));
    }

    [Fact]
    public async Task Deregister_OneOfTwoWorkers_DisappearsAtOnceOtherStays()
    {
        var options = Options(fixture.Require(), ttlSeconds: 30);
        await using var discovery = new EtcdDiscovery(options);
        await using var a = await EtcdRegistration.StartAsync(options, Worker("a"), cancellationToken: _ct);
        await using var b = await EtcdRegistration.StartAsync(options, Worker("b"), cancellationToken: _ct);
        await discovery.WaitForAsync(s => s.Has("a") && s.Has("b"), TimeSpan.FromSeconds(5), _ct);

        var watch = Stopwatch.StartNew();
        await a.DeregisterAsync(_ct);
        var snapshot = await discovery.WaitForAsync(s => !s.Has("a"), OneSecond, _ct);

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"took {watch.Elapsed}");
        Assert.Equal("b", Assert.Single(snapshot.Instances).InstanceId);
        Assert.Equal(RegistrationState.Deregistered, a.State);
        using var connection = new EtcdConnection(options);
        Assert.Equal(0, (await connection.Kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(a.ModelKey) }, cancellationToken: _ct)).Count);
        var leases = await connection.Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = a.LeaseId }, cancellationToken: _ct);
        Assert.Equal(-1, leases.TTL); // revoked
        await a.DeregisterAsync(_ct); // idempotent
    }

    [Fact]
    public async Task Abandon_KeepAliveStops_WorkerDisappearsWithinTtl()
    {
        var options = Options(fixture.Require(), ttlSeconds: 2);
        await using var discovery = new EtcdDiscovery(options);
        var crashed = await EtcdRegistration.StartAsync(options, Worker("crashed"), cancellationToken: _ct);
        await using var alive = await EtcdRegistration.StartAsync(options, Worker("alive"), cancellationToken: _ct);
        await discovery.WaitForAsync(s => s.Has("crashed") && s.Has("alive"), TimeSpan.FromSeconds(5), _ct);
        await Task.Delay(TimeSpan.FromSeconds(2.5), _ct); // several refreshes: the keep-alive works
        Assert.True(discovery.Current.Has("crashed"));

        var watch = Stopwatch.StartNew();
        await crashed.AbandonAsync();
        // etcd checks expiry every 500 ms on top of the TTL; allow that plus scheduling on a busy machine.
        var snapshot = await discovery.WaitForAsync(s => !s.Has("crashed"), options.LeaseTtl + TimeSpan.FromSeconds(2), _ct);

        TestContext.Current.TestOutputHelper?.WriteLine($"abandoned worker gone after {watch.Elapsed.TotalSeconds:F2} s (TTL 2 s)");
        Assert.True(watch.Elapsed > options.LeaseTtl / 3, "the keys must stay until the lease expires");
        Assert.Equal("alive", Assert.Single(snapshot.Instances).InstanceId);
    }

    [Fact]
    public async Task Discovery_TwoNamespaces_SeeOnlyTheirOwnWorkers()
    {
        var server = fixture.Require();
        var blue = Options(server);
        var green = Options(server);
        await using var blueDiscovery = new EtcdDiscovery(blue);
        await using var greenDiscovery = new EtcdDiscovery(green);
        await using var b = await EtcdRegistration.StartAsync(blue, Worker("same-id", model: "blue-model"), cancellationToken: _ct);
        await using var g = await EtcdRegistration.StartAsync(green, Worker("same-id", model: "green-model"), cancellationToken: _ct);

        var blueSnapshot = await blueDiscovery.WaitForAsync(s => s.Has("same-id"), TimeSpan.FromSeconds(5), _ct);
        var greenSnapshot = await greenDiscovery.WaitForAsync(s => s.Has("same-id"), TimeSpan.FromSeconds(5), _ct);
        await Task.Delay(200, _ct);

        Assert.Equal("blue-model", Assert.Single(blueDiscovery.Current.Instances).Model);
        Assert.Equal("green-model", Assert.Single(greenDiscovery.Current.Instances).Model);
        Assert.Equal(["blue-model"], blueSnapshot.Models);
        Assert.Equal(["green-model"], greenSnapshot.Models);
    }

    [Fact]
    public async Task Register_Worker_WritesSnakeCaseRecordAndModelKeyUnderOneLease()
    {
        var options = Options(fixture.Require());
        var worker = Worker("w/1", model: "org/model");
        await using var registration = await EtcdRegistration.StartAsync(options, worker, cancellationToken: _ct);
        using var connection = new EtcdConnection(options);

        Assert.Equal($"/tandem/v1/{options.Namespace}/instances/worker/w%2F1", registration.InstanceKey);
        Assert.Equal($"/tandem/v1/{options.Namespace}/models/org%2Fmodel/w%2F1", registration.ModelKey);
        var instanceKv = Assert.Single((await connection.Kv.RangeAsync(
            new RangeRequest { Key = ByteString.CopyFromUtf8(registration.InstanceKey) }, cancellationToken: _ct)).Kvs);
        var modelKv = Assert.Single((await connection.Kv.RangeAsync(
            new RangeRequest { Key = ByteString.CopyFromUtf8(registration.ModelKey) }, cancellationToken: _ct)).Kvs);
        Assert.Equal(registration.LeaseId, instanceKv.Lease);
        Assert.Equal(registration.LeaseId, modelKv.Lease);

        using var instanceJson = JsonDocument.Parse(instanceKv.Value.Memory);
        Assert.Equal(
            ["instance_id", "component", "role", "model", "model_fingerprint", "endpoints", "kv_block_size", "started_at"],
            instanceJson.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("both", instanceJson.RootElement.GetProperty("role").GetString());
        Assert.Equal("tcp://10.0.0.7:9200", instanceJson.RootElement.GetProperty("endpoints").GetProperty("kv").GetString());
        using var modelJson = JsonDocument.Parse(modelKv.Value.Memory);
        Assert.Equal("org/model", modelJson.RootElement.GetProperty("model").GetString());
        Assert.Equal("w/1", modelJson.RootElement.GetProperty("instance_id").GetString());
    }

    [Fact]
    public async Task Discovery_MalformedValuesUnderPrefix_AreIgnoredWithWarning()
    {
        var options = Options(fixture.Require());
        var logger = new ListLogger();
        using var connection = new EtcdConnection(options);
        var prefix = EtcdKeys.InstancesPrefix(options.Namespace);
        async Task Put(string key, string value) => await connection.Kv.PutAsync(
            new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) }, cancellationToken: _ct);
        await Put(prefix + "worker/garbage", "{not json");
        await Put(prefix + "worker/no-model", """{"instance_id":"no-model","role":"both"}""");
        await Put(prefix + "worker/bad-role", """{"instance_id":"bad-role","role":"leader","model":"m"}""");
        await Put(prefix + "worker/elsewhere", """{"instance_id":"other","role":"both","model":"m"}""");

        await using var discovery = new EtcdDiscovery(options, logger);
        await using var good = await EtcdRegistration.StartAsync(options, Worker("good"), cancellationToken: _ct);
        await discovery.WaitForAsync(s => s.Has("good"), TimeSpan.FromSeconds(5), _ct);
        await Put(prefix + "worker/garbage", "[]"); // a later bad value arrives through the watch
        await Put(good.InstanceKey, "null"); // a valid record overwritten with garbage stops listing the worker
        var snapshot = await discovery.WaitForAsync(s => !s.Has("good"), TimeSpan.FromSeconds(5), _ct);

        Assert.Empty(snapshot.Instances);
        Assert.True(discovery.IsConnected);
        var warnings = logger.Entries.Where(e => e.Level == LogLevel.Warning && e.EventId == 5).Select(e => e.Message).ToList();
        Assert.True(warnings.Count >= 6, string.Join("\n", warnings));
        Assert.Contains(warnings, w => w.Contains("model is missing", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("role", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Snapshot_AfterChange_OldSnapshotUnchanged()
    {
        var options = Options(fixture.Require());
        await using var discovery = new EtcdDiscovery(options);
        await using var a = await EtcdRegistration.StartAsync(options, Worker("a"), cancellationToken: _ct);
        var before = await discovery.WaitForAsync(s => s.Has("a"), TimeSpan.FromSeconds(5), _ct);
        var seen = new List<DiscoverySnapshot>();
        discovery.Changed += s => { lock (seen) { seen.Add(s); } };

        await using var b = await EtcdRegistration.StartAsync(options, Worker("b"), cancellationToken: _ct);
        var after = await discovery.WaitForAsync(s => s.Has("b"), TimeSpan.FromSeconds(5), _ct);
        await a.DeregisterAsync(_ct);
        var last = await discovery.WaitForAsync(s => !s.Has("a"), TimeSpan.FromSeconds(5), _ct);

        Assert.Equal(["a"], before.Instances.Select(i => i.InstanceId));
        Assert.Equal(["a", "b"], after.Instances.Select(i => i.InstanceId));
        Assert.Equal(["b"], last.Instances.Select(i => i.InstanceId));
        Assert.True(before.Version < after.Version && after.Version < last.Version);
        Assert.IsNotType<List<WorkerInstance>>(before.Instances); // not a list a reader could cast back and change
        lock (seen)
        {
            Assert.Contains(after, seen);
            Assert.Contains(last, seen);
        }
    }

    [Fact]
    public async Task Registration_LeaseRevokedElsewhere_RegistersAgain()
    {
        // The same path as a process paused longer than the TTL: the next refresh finds the lease gone.
        var options = Options(fixture.Require(), ttlSeconds: 3);
        await using var discovery = new EtcdDiscovery(options);
        await using var registration = await EtcdRegistration.StartAsync(options, Worker("phoenix"), cancellationToken: _ct);
        await discovery.WaitForAsync(s => s.Has("phoenix"), TimeSpan.FromSeconds(5), _ct);
        var firstLease = registration.LeaseId;
        using var connection = new EtcdConnection(options);

        await connection.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = firstLease }, cancellationToken: _ct);
        await discovery.WaitForAsync(s => !s.Has("phoenix"), TimeSpan.FromSeconds(2), _ct);
        await discovery.WaitForAsync(s => s.Has("phoenix"), options.KeepAliveInterval + TimeSpan.FromSeconds(3), _ct);
        await Eventually(() => registration.Registrations == 2, TimeSpan.FromSeconds(1), "the registration counts the new lease");

        var back = discovery.Current;
        Assert.NotEqual(firstLease, registration.LeaseId);
        Assert.Equal(RegistrationState.Registered, registration.State);
        AssertSame(registration.Instance, Assert.Single(back.Instances));
    }

    [Fact]
    public async Task Watch_FromCompactedRevision_EndsForResync()
    {
        var options = Options(fixture.Require());
        using var connection = new EtcdConnection(options);
        var key = ByteString.CopyFromUtf8(EtcdKeys.InstancesPrefix(options.Namespace) + "worker/churn");
        long revision = 0;
        for (var i = 0; i < 3; i++)
        {
            revision = (await connection.Kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("{}") }, cancellationToken: _ct))
                .Header.Revision;
        }
        await connection.Kv.CompactAsync(new CompactionRequest { Revision = revision }, cancellationToken: _ct);
        await using var discovery = new EtcdDiscovery(options);
        await discovery.WaitForAsync(s => s.Version > 0, TimeSpan.FromSeconds(5), _ct);

        var outcome = await discovery.WatchAsync(revision - 2, () => { }, _ct).WaitAsync(TimeSpan.FromSeconds(5), _ct);

        Assert.StartsWith("compacted", outcome, StringComparison.Ordinal);
    }
}
