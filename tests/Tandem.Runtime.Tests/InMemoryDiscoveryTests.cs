using Tandem.Abstractions;

namespace Tandem.Runtime.Tests;

public class InMemoryDiscoveryTests
{
    private static WorkerInstance W(string id, WorkerRole role, string model = "m") => new() { InstanceId = id, Role = role, Model = model };

    [Fact]
    public void RegisterDeregister_SwapsSnapshotsAndRaisesChanged()
    {
        var d = new InMemoryDiscovery();
        var seen = new List<long>();
        d.Changed += s => seen.Add(s.Version);
        var empty = d.Current;
        d.Register(W("a", WorkerRole.Both));
        d.Register(W("p", WorkerRole.Prefill));
        d.Register(W("b", WorkerRole.Decode, "other"));
        Assert.Empty(empty.Instances);
        Assert.Equal(["a"], d.Current.DecodeWorkers("m").Select(w => w.InstanceId));
        Assert.Equal(["m", "other"], d.Current.Models);
        d.Register(W("a", WorkerRole.Both)); // re-registration replaces
        Assert.Equal(3, d.Current.Instances.Count);
        d.Deregister("a");
        d.Deregister("missing");
        Assert.Empty(d.Current.DecodeWorkers("m"));
        Assert.Equal([1, 2, 3, 4, 5, 6], seen);
    }
}
