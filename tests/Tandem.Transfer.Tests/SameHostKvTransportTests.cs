namespace Tandem.Transfer.Tests;

public sealed class SameHostKvTransportTests : SharedMemoryTestBase
{
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Directory.Exists(ShmDirectory + "-other"))
        {
            Directory.Delete(ShmDirectory + "-other", recursive: true);
        }
    }

    [Fact]
    public async Task AdvertisedAddress_SameDomain_PushAndPullGoThroughSharedMemory()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        await using var tcp = new TcpKvTransport(ShmOptions);
        await using var shm = new SharedMemoryKvTransport(ShmOptions);
        var transport = new SameHostKvTransport(tcp, shm);
        var address = server.AdvertisedAddress;
        var ct = TestContext.Current.CancellationToken;

        Assert.StartsWith(server.TcpAddress + "?shm=", address, StringComparison.Ordinal);
        Assert.Equal(server.SharedMemoryAddress, transport.Route(address));
        Assert.True(transport.Supports(address));
        var pushed = local.AddLease(5, random: new Random(1));
        var pushedInto = remote.AddLease(5);
        await transport.PushAsync(local, pushed, address, pushedInto, 0, 5, ct);
        var pulled = remote.AddLease(5, random: new Random(2));
        var pulledInto = local.AddLease(5);
        await transport.PullAsync(address, pulled, local, pulledInto, 1, 4, ct);

        Assert.True(local.SameBlocks(pushed, remote, pushedInto, 0, 5));
        Assert.True(remote.SameBlocks(pulled, local, pulledInto, 1, 4));
        Assert.Single(Segments); // the shared-memory path was taken (and its segment reused)
        Assert.Equal(1, server.MappedSegments);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AddressWithoutOrWithOtherDomain_GoesOverTcp(bool otherDomain)
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Small);
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        await using var tcp = new TcpKvTransport(ShmOptions);
        await using var shm = new SharedMemoryKvTransport(ShmOptions);
        var transport = new SameHostKvTransport(tcp, shm);
        var address = otherDomain ? SameHostKvTransport.Advertise(server.TcpAddress, new string('a', 32)) : server.TcpAddress;

        Assert.Equal(server.TcpAddress, transport.Route(address));
        var pushed = local.AddLease(3, random: new Random(3));
        var pushedInto = remote.AddLease(3);
        await transport.PushAsync(local, pushed, address, pushedInto, 0, 3, TestContext.Current.CancellationToken);

        Assert.True(local.SameBlocks(pushed, remote, pushedInto, 0, 3));
        Assert.Empty(Segments);
        Assert.Equal(0, server.MappedSegments);
    }

    [Fact]
    public async Task SharedMemoryRefusedByPeer_TransferRetriedOverTcp_AndPeerStaysOnTcp()
    {
        // Same domain id advertised, but the server looks for segments in another directory: it refuses ours.
        var other = ShmDirectory + "-other";
        Directory.CreateDirectory(other);
        var remote = new FakeKvBlockAccess(TestLayouts.Small);
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(remote, options: ShmOptions with { SharedMemoryDirectory = other });
        await using var tcp = new TcpKvTransport(ShmOptions);
        await using var shm = new SharedMemoryKvTransport(ShmOptions);
        var transport = new SameHostKvTransport(tcp, shm);
        var address = SameHostKvTransport.Advertise(server.TcpAddress, shm.DomainId);
        Assert.Equal(server.SharedMemoryAddress, transport.Route(address));

        var pushed = local.AddLease(3, random: new Random(4));
        var pushedInto = remote.AddLease(3);
        await transport.PushAsync(local, pushed, address, pushedInto, 0, 3, TestContext.Current.CancellationToken);

        Assert.True(local.SameBlocks(pushed, remote, pushedInto, 0, 3));
        Assert.Equal(server.TcpAddress, transport.Route(address));
        Assert.Empty(Segments); // the refused segment was deleted, not kept
    }

    [Fact]
    public void Parse_SplitsTcpAddressAndDomain()
    {
        Assert.Equal(("tcp://10.0.0.1:7000", "abc"), SameHostKvTransport.Parse("tcp://10.0.0.1:7000?shm=abc"));
        Assert.Equal(("tcp://10.0.0.1:7000", (string?)null), SameHostKvTransport.Parse("tcp://10.0.0.1:7000"));
        Assert.Equal("tcp://h:1", SameHostKvTransport.Advertise("tcp://h:1", null));
    }
}
