using Tandem.Abstractions;

namespace Tandem.Transfer.Tests;

/// <summary>
/// Shared memory when the server's KV pool is itself a shared-memory file: the client copies straight into or out of the
/// pool (one copy, no staging segment), under a pin that the server holds until the END or the connection drops.
/// </summary>
public sealed class DirectSharedMemoryTests : SharedMemoryTestBase
{
    /// <summary>Physical blocks out of order, with one run of consecutive ids (copied in one call) and gaps.</summary>
    private static readonly int[] Scattered = [9, 2, 3, 4, 15, 0, 7, 11];

    private static bool Equal(SharedPoolKvBlockAccess pool, long poolLease, FakeKvBlockAccess other, long otherLease, int first, int count)
    {
        var layout = pool.Layout;
        var per = layout.FloatsPerBlockLayer;
        var keys = new float[count * per];
        var values = new float[count * per];
        var poolKeys = new float[count * per];
        var poolValues = new float[count * per];
        for (var layer = 0; layer < layout.NumLayers; layer++)
        {
            other.Read(otherLease, layer, first, count, keys, values);
            pool.Read(poolLease, layer, first, count, poolKeys, poolValues);
            if (!keys.AsSpan().SequenceEqual(poolKeys) || !values.AsSpan().SequenceEqual(poolValues))
            {
                return false;
            }
        }
        return true;
    }

    [Theory]
    [InlineData(1, 0, 8)]
    [InlineData(2, 3, 5)]
    public async Task Push_WritesStraightIntoThePool_NoStagingSegment(int seed, int first, int count)
    {
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(first + count, random: new Random(seed));
        using var pool = new SharedPoolKvBlockAccess(TestLayouts.Medium, 16, ShmDirectory);
        var untouched = Scattered[..first];
        var poolLease = pool.AddLease(Scattered[..(first + count)], cached: first, random: new Random(99));
        var before = untouched.Select(b => pool.Block(1, 0, b).ToArray()).ToList();
        await using var server = new KvTransferServer(pool, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);

        await transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, poolLease, first, count, TestContext.Current.CancellationToken);

        Assert.True(Equal(pool, poolLease, source, sourceLease, first, count));
        // The cached blocks in front were not written, and nothing went through a staging segment.
        Assert.Equal(before, untouched.Select(b => pool.Block(1, 0, b).ToArray()).ToList());
        Assert.Empty(Segments);
        Assert.Equal(0, transport.IdleSegments);
        Assert.Equal(0, pool.Pins);
        await Poll.EqualAsync(1L, () => server.CompletedTransfers);
    }

    [Fact]
    public async Task Pull_ReadsStraightOutOfThePool()
    {
        using var pool = new SharedPoolKvBlockAccess(TestLayouts.Small, 16, ShmDirectory);
        var poolLease = pool.AddLease(Scattered, random: new Random(5));
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        var localLease = local.AddLease(Scattered.Length, cached: 2);
        await using var server = new KvTransferServer(pool, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);

        await transport.PullAsync(server.SharedMemoryAddress, poolLease, local, localLease, 2, Scattered.Length - 2, TestContext.Current.CancellationToken);
        // Twice: the second transfer reuses the client's mapping of the pool.
        await transport.PullAsync(server.SharedMemoryAddress, poolLease, local, localLease, 2, Scattered.Length - 2, TestContext.Current.CancellationToken);

        Assert.True(Equal(pool, poolLease, local, localLease, 2, Scattered.Length - 2));
        Assert.True(local.IsZero(localLease, 0, 2));
        Assert.Empty(Segments);
        Assert.Equal(0, pool.Pins);
    }

    [Fact]
    public async Task StagedMode_StillWorks_AgainstASharedPool()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(Scattered.Length, random: new Random(8));
        using var pool = new SharedPoolKvBlockAccess(TestLayouts.Small, 16, ShmDirectory);
        var poolLease = pool.AddLease(Scattered);
        await using var server = new KvTransferServer(pool, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions with { DirectSharedMemory = false });

        await transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, poolLease, 0, Scattered.Length, TestContext.Current.CancellationToken);

        Assert.True(Equal(pool, poolLease, source, sourceLease, 0, Scattered.Length));
        Assert.Equal(1, transport.IdleSegments);
    }

    [Fact]
    public async Task PushIntoCachedBlocks_IsRefused_BeforeAnyByteMoves()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(4, random: new Random(1));
        using var pool = new SharedPoolKvBlockAccess(TestLayouts.Small, 16, ShmDirectory);
        var poolLease = pool.AddLease([1, 2, 3, 4], cached: 2, random: new Random(2));
        var before = pool.Block(0, 0, 1).ToArray();
        await using var server = new KvTransferServer(pool, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() => transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, poolLease, 1, 3, TestContext.Current.CancellationToken));

        Assert.Contains("cached", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, pool.Block(0, 0, 1).ToArray());
        Assert.Equal(0, pool.Pins);
    }

    [Fact]
    public async Task ClientGoneMidTransfer_ReleasesThePin()
    {
        using var pool = new SharedPoolKvBlockAccess(TestLayouts.Small, 16, ShmDirectory);
        var poolLease = pool.AddLease([3, 4, 5]);
        await using var server = new KvTransferServer(pool, options: ShmOptions);
        var connections = new KvConnectionPool(SharedMemoryKvTransport.Scheme, ShmOptions);
        var connection = await connections.RentAsync(server.SharedMemoryAddress, TestLayouts.Small, TestContext.Current.CancellationToken);
        Assert.True(connection.PeerSharesPool);

        // Ask for a direct write, read the pool's answer, then vanish without the END (as a killed process would).
        using (connection.BeginOperation(TestContext.Current.CancellationToken))
        {
            connection.WriteRequest(KvFrameType.ShmDirect, poolLease, 0, 3, 1);
            await connection.FlushAsync("test request");
            var (path, _, poolBlocks, blocks) = KvFrames.DecodeShmPool(await connection.ExpectAsync(KvFrameType.ShmPool, "the pool"));
            connection.Consume();
            Assert.Equal(pool.PoolFile, path);
            Assert.Equal(16, poolBlocks);
            Assert.Equal([3, 4, 5], blocks);
        }
        Assert.Equal(1, pool.Pins);
        connection.Abort();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (pool.Pins > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.Equal(0, pool.Pins);
        await Poll.EqualAsync(1L, () => server.FailedConnections);
        await connections.DisposeAsync();
    }
}
