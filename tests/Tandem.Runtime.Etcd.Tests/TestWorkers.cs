using Tandem.Abstractions;

namespace Tandem.Runtime.Etcd.Tests;

internal static class TestWorkers
{
    public static WorkerInstance Worker(string id, string model = "stories260K", WorkerRole role = WorkerRole.Both) => new()
    {
        InstanceId = id,
        Component = "worker",
        Role = role,
        Model = model,
        ModelFingerprint = "sha256:" + model,
        Endpoints = new Dictionary<string, string> { ["rpc"] = "http://10.0.0.7:9100", ["kv"] = "tcp://10.0.0.7:9200" },
        KvBlockSize = 16,
        StartedAt = new DateTimeOffset(2026, 1, 2, 3, 4, 5, 678, TimeSpan.Zero),
    };

    public static EtcdDiscoveryOptions Options(EtcdServer server, string? ns = null, double ttlSeconds = 2) => new()
    {
        Endpoints = $"etcd://127.0.0.1:{server.ClientPort}",
        Namespace = ns ?? "test-" + Guid.NewGuid().ToString("N")[..8],
        LeaseTtl = TimeSpan.FromSeconds(ttlSeconds),
        RequestTimeout = TimeSpan.FromSeconds(2),
        MinReconnectDelay = TimeSpan.FromMilliseconds(50),
        MaxReconnectDelay = TimeSpan.FromSeconds(1),
    };

    public static void AssertSame(WorkerInstance expected, WorkerInstance actual)
    {
        Assert.Equal(expected.InstanceId, actual.InstanceId);
        Assert.Equal(expected.Component, actual.Component);
        Assert.Equal(expected.Role, actual.Role);
        Assert.Equal(expected.Model, actual.Model);
        Assert.Equal(expected.ModelFingerprint, actual.ModelFingerprint);
        Assert.Equal(expected.Endpoints.OrderBy(p => p.Key), actual.Endpoints.OrderBy(p => p.Key));
        Assert.Equal(expected.KvBlockSize, actual.KvBlockSize);
        Assert.Equal(expected.StartedAt, actual.StartedAt);
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test after <paramref name="timeout"/>.</summary>
    public static async Task Eventually(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"not within {timeout}: {what}");
            }
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    public static bool Has(this DiscoverySnapshot snapshot, string id) => snapshot.Instances.Any(i => i.InstanceId == id);
}
