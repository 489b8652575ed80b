using Tandem.Abstractions;

namespace Tandem.Transfer.Tests;

public class KvTransportsTests
{
    [Fact]
    public async Task PushAsync_AddressScheme_GoesToTheTransportThatSupportsIt()
    {
        var inproc = new InProcessKvTransport();
        await using var tcp = new TcpKvTransport();
        await using var shm = new SharedMemoryKvTransport();
        var transports = new KvTransports(inproc, tcp, shm);
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(3, random: new Random(1));
        var destinationLease = destination.AddLease(3);
        var address = inproc.Register("worker-b", destination);

        await transports.PushAsync(source, sourceLease, address, destinationLease, 0, 3, TestContext.Current.CancellationToken);

        Assert.True(source.SameBlocks(sourceLease, destination, destinationLease, 0, 3));
        Assert.Same(tcp, transports.Resolve("tcp://127.0.0.1:1"));
        Assert.Same(shm, transports.Resolve("shm://127.0.0.1:1"));
        Assert.Same(inproc, transports.Resolve("inproc://x"));
    }

    [Fact]
    public async Task PullAsync_UnknownScheme_ClearError()
    {
        var transports = new KvTransports(new InProcessKvTransport());
        var destination = new FakeKvBlockAccess(TestLayouts.Small);

        Assert.False(transports.Supports("rdma://10.0.0.1:1"));
        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transports.PullAsync("rdma://10.0.0.1:1", 1, destination, 1, 0, 1, TestContext.Current.CancellationToken));
        Assert.Contains("no KV transport handles", error.Message, StringComparison.Ordinal);
    }
}
