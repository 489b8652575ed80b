using System.Text;
using Tandem.Abstractions;
using static Tandem.Runtime.Etcd.Tests.TestWorkers;

namespace Tandem.Runtime.Etcd.Tests;

public sealed class OptionsAndCodecTests
{
    [Fact]
    public void ParseEndpoints_EtcdSchemeAndList_BecomeHttpUris()
    {
        var options = new EtcdDiscoveryOptions { Endpoints = "etcd://10.0.0.1:2379, http://10.0.0.2:3000 ,10.0.0.3" };

        var endpoints = options.ParseEndpoints();

        Assert.Equal(["http://10.0.0.1:2379/", "http://10.0.0.2:3000/", "http://10.0.0.3:2379/"], endpoints.Select(e => e.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("ftp://host:1")]
    [InlineData("http://a:1,https://b:2")]
    public void Validate_BadEndpoints_Throws(string endpoints) =>
        Assert.Throws<ArgumentException>(() => new EtcdDiscoveryOptions { Endpoints = endpoints }.Validate());

    [Fact]
    public void Validate_BadTimings_Throws()
    {
        Assert.Throws<ArgumentException>(() => new EtcdDiscoveryOptions { LeaseTtl = TimeSpan.FromMilliseconds(500) }.Validate());
        Assert.Throws<ArgumentException>(() => new EtcdDiscoveryOptions { RequestTimeout = TimeSpan.Zero }.Validate());
        Assert.Throws<ArgumentException>(() => new EtcdDiscoveryOptions { Namespace = " " }.Validate());
        new EtcdDiscoveryOptions().Validate();
        Assert.Equal(TimeSpan.FromSeconds(10) / 3, new EtcdDiscoveryOptions().KeepAliveInterval);
    }

    [Fact]
    public void Keys_Layout_MatchesBlueprintAndEscapesSegments()
    {
        Assert.Equal("/tandem/v1/default/instances/worker/w1", EtcdKeys.InstanceKey("default", "worker", "w1"));
        Assert.Equal("/tandem/v1/prod/models/meta%2Fllama/w1", EtcdKeys.ModelKey("prod", "meta/llama", "w1"));
        Assert.Equal("/tandem/v1/default/instances0"u8.ToArray(), EtcdKeys.PrefixRangeEnd("/tandem/v1/default/instances/"));
    }

    [Fact]
    public void Codec_RoundTrip_KeepsEveryField()
    {
        var worker = Worker("w1", role: WorkerRole.Decode);

        var decoded = WorkerInstanceCodec.DecodeInstance(WorkerInstanceCodec.EncodeInstance(worker));

        AssertSame(worker, decoded);
        Assert.Contains("\"role\":\"decode\"", Encoding.UTF8.GetString(WorkerInstanceCodec.EncodeInstance(worker)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("{\"instance_id\":\"x\",\"role\":\"both\"")]
    [InlineData("{\"instance_id\":\"x\",\"role\":7,\"model\":\"m\"}")]
    [InlineData("{\"instance_id\":\"\",\"role\":\"both\",\"model\":\"m\"}")]
    [InlineData("{\"instance_id\":\"x\",\"role\":\"both\",\"model\":\"m\",\"kv_block_size\":-1}")]
    [InlineData("{\"instance_id\":\"x\",\"role\":\"both\",\"model\":\"m\",\"endpoints\":[1]}")]
    public void DecodeInstance_Malformed_ThrowsFormatException(string json) =>
        Assert.Throws<FormatException>(() => WorkerInstanceCodec.DecodeInstance(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void DecodeInstance_RandomBytes_NeverThrowsAnythingElse()
    {
        var random = new Random(1234);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 64)];
            random.NextBytes(bytes);
            try
            {
                WorkerInstanceCodec.DecodeInstance(bytes);
            }
            catch (FormatException)
            {
            }
        }
    }
}
