using Tandem.Abstractions;

namespace Tandem.Runtime.Tests;

public class StaticDiscoveryTests
{
    [Fact]
    public void Parse_Topology_GivesInstancesWithRolesAndEndpoints()
    {
        var snapshot = StaticDiscovery.Parse("""
            model: stories260K
            workers:
              - id: prefill-0
                role: prefill
                rpc: http://127.0.0.1:9100
                kv: tcp://127.0.0.1:9200
              - id: decode-0
                role: decode
                rpc: http://127.0.0.1:9101
            """);
        Assert.Equal(2, snapshot.Instances.Count);
        Assert.Equal(WorkerRole.Prefill, snapshot.Instances[0].Role);
        Assert.Equal("tcp://127.0.0.1:9200", snapshot.Instances[0].Endpoints["kv"]);
        Assert.Equal(["decode-0"], snapshot.DecodeWorkers("stories260K").Select(w => w.InstanceId));
    }

    [Theory]
    [InlineData("workers: []", "non-empty")]
    [InlineData("model: m\nworkers:\n  - id: a\n    role: sideways\n    rpc: http://x", "role must be")]
    [InlineData("model: m\nworkers:\n  - id: a\n    role: both", "needs 'rpc'")]
    [InlineData("model: m\nworkers:\n  - id: a\n    rpc: http://x\n    colour: red", "unknown key 'colour'")]
    [InlineData("workers:\n  - id: a\n    rpc: http://x", "has no model")]
    [InlineData("model: m\nworkers:\n  - id: a\n    rpc: http://x\n  - id: a\n    rpc: http://y", "duplicate")]
    [InlineData("model: [unclosed", "topology:")]
    public void Parse_BadFile_NamesTheProblemAndLine(string yaml, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => StaticDiscovery.Parse(yaml));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("topology", e.Message, StringComparison.Ordinal);
    }
}
