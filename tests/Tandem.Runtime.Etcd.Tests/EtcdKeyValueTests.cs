using System.Text;
using static Tandem.Runtime.Etcd.Tests.TestWorkers;

namespace Tandem.Runtime.Etcd.Tests;

/// <summary>Plain keys (TensorRT-LLM's metadata layout): list by prefix, keep alive under a lease, delete.</summary>
[Collection("etcd")]
public sealed class EtcdKeyValueTests(EtcdFixture fixture)
{
    private readonly CancellationToken _ct = TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeepAsync_KeyOutlivesItsTtl_ListsByPrefix_AndLeavesOnDispose()
    {
        using var store = new EtcdKeyValue(Options(fixture.Require(), ttlSeconds: 1));
        var prefix = $"trtllm-{Guid.NewGuid():N}/";
        var kept = await store.KeepAsync(prefix + "a", Encoding.UTF8.GetBytes("{\"url\":\"http://h:1\"}"), cancellationToken: _ct);
        await Task.Delay(TimeSpan.FromSeconds(2.5), _ct); // past the TTL: the keep-alive holds it
        var listed = await store.ListAsync(prefix, _ct);
        var entry = Assert.Single(listed);
        Assert.Equal(prefix + "a", entry.Key);
        Assert.Equal("{\"url\":\"http://h:1\"}", Encoding.UTF8.GetString(entry.Value));
        Assert.Empty(await store.ListAsync(prefix + "b", _ct));

        await kept.DisposeAsync();
        Assert.Empty(await store.ListAsync(prefix, _ct));
    }

    [Fact]
    public async Task DeleteAsync_RemovesAKeyAnotherProcessKeeps()
    {
        using var owner = new EtcdKeyValue(Options(fixture.Require()));
        using var other = new EtcdKeyValue(Options(fixture.Require()));
        var key = $"trtllm-{Guid.NewGuid():N}/x";
        await using var kept = await owner.KeepAsync(key, [1, 2, 3], cancellationToken: _ct);
        Assert.Single(await other.ListAsync(key, _ct));
        await other.DeleteAsync(key, _ct);
        Assert.Empty(await owner.ListAsync(key, _ct));
    }
}
