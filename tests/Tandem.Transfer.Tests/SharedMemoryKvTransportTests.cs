using Tandem.Abstractions;

namespace Tandem.Transfer.Tests;

public sealed class SharedMemoryKvTransportTests : SharedMemoryTestBase
{
    [Theory]
    [InlineData(1, 0, 5)]
    [InlineData(2, 3, 9)]
    public async Task PushAsync_RandomKv_DestinationIsByteIdentical_SegmentKeptUntilDispose(int seed, int first, int count)
    {
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var destination = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(first + count, random: new Random(seed));
        var destinationLease = destination.AddLease(first + count, cached: first);
        await using var server = new KvTransferServer(destination, options: ShmOptions);
        var transport = new SharedMemoryKvTransport(ShmOptions);

        await transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, destinationLease, first, count, TestContext.Current.CancellationToken);

        Assert.True(source.SameBlocks(sourceLease, destination, destinationLease, first, count));
        Assert.True(destination.IsZero(destinationLease, 0, first));
        Assert.Single(Segments);
        Assert.Equal(1, transport.IdleSegments);
        await transport.DisposeAsync();
        Assert.Empty(Segments);
    }

    [Theory]
    [InlineData(3, 0, 1)]
    [InlineData(4, 2, 7)]
    public async Task PullAsync_RandomKv_DestinationIsByteIdentical_SegmentKeptUntilDispose(int seed, int first, int count)
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Small);
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        var remoteLease = remote.AddLease(first + count + 1, random: new Random(seed));
        var localLease = local.AddLease(first + count + 1);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        var transport = new SharedMemoryKvTransport(ShmOptions);

        await transport.PullAsync(server.SharedMemoryAddress, remoteLease, local, localLease, first, count, TestContext.Current.CancellationToken);

        Assert.True(remote.SameBlocks(remoteLease, local, localLease, first, count));
        Assert.True(local.IsZero(localLease, first + count, 1));
        Assert.Single(Segments);
        await transport.DisposeAsync();
        Assert.Empty(Segments);
    }

    [Fact]
    public async Task SequentialTransfers_ReuseOneMappedSegmentOnBothSides_GrowWhenNeeded()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        var random = new Random(11);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);
        var ct = TestContext.Current.CancellationToken;
        string? path = null;
        for (var i = 0; i < 4; i++)
        {
            // Alternate push and pull, different data each time: a reused segment never leaks old bytes into a transfer.
            var localLease = local.AddLease(6, random: random);
            var remoteLease = remote.AddLease(6, random: random);
            if (i % 2 == 0)
            {
                await transport.PushAsync(local, localLease, server.SharedMemoryAddress, remoteLease, 1, 5, ct);
            }
            else
            {
                await transport.PullAsync(server.SharedMemoryAddress, remoteLease, local, localLease, 1, 5, ct);
            }
            Assert.True(local.SameBlocks(localLease, remote, remoteLease, 1, 5));
            var segment = Assert.Single(Segments);
            Assert.True(path is null || path == segment, "the segment was reused");
            path = segment;
            Assert.Equal(1, server.MappedSegments);
        }

        // A smaller transfer reuses the same segment; a bigger one creates a bigger segment next to it.
        var small = local.AddLease(2, random: random);
        var smallDestination = remote.AddLease(2);
        await transport.PushAsync(local, small, server.SharedMemoryAddress, smallDestination, 0, 2, ct);
        Assert.True(local.SameBlocks(small, remote, smallDestination, 0, 2));
        Assert.Equal(path, Assert.Single(Segments));
        var big = local.AddLease(40, random: random);
        var bigDestination = remote.AddLease(40);
        await transport.PushAsync(local, big, server.SharedMemoryAddress, bigDestination, 0, 40, ct);
        Assert.True(local.SameBlocks(big, remote, bigDestination, 0, 40));
        Assert.Equal(2, Segments.Length);
        Assert.Equal(2, transport.IdleSegments);
    }

    [Fact]
    public async Task Server_DropsMappingsOfDeletedSegments()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Small);
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        var ct = TestContext.Current.CancellationToken;
        for (var i = 0; i < 3; i++)
        {
            var transport = new SharedMemoryKvTransport(ShmOptions);
            var localLease = local.AddLease(3, random: new Random(i));
            var remoteLease = remote.AddLease(3);
            await transport.PushAsync(local, localLease, server.SharedMemoryAddress, remoteLease, 0, 3, ct);
            Assert.True(local.SameBlocks(localLease, remote, remoteLease, 0, 3));
            await transport.DisposeAsync();
            Assert.Empty(Segments);
            // The previous client's segment is gone: the server unmapped it when it mapped the new one.
            Assert.Equal(1, server.MappedSegments);
        }
    }

    [Fact]
    public async Task NewTransport_DeletesSegmentsNoProcessHoldsOpen_KeepsLiveOnes()
    {
        var orphan = Path.Combine(ShmDirectory, "tandem-kv-999999-0123456789abcdef0123456789abcdef");
        await File.WriteAllBytesAsync(orphan, new byte[4096], TestContext.Current.CancellationToken);
        File.SetLastWriteTimeUtc(orphan, DateTime.UtcNow.AddMinutes(-5));
        var unrelated = Path.Combine(ShmDirectory, "other-file");
        await File.WriteAllBytesAsync(unrelated, [1], TestContext.Current.CancellationToken);
        File.SetLastWriteTimeUtc(unrelated, DateTime.UtcNow.AddMinutes(-5));
        var remote = new FakeKvBlockAccess(TestLayouts.Small);
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        await using var first = new SharedMemoryKvTransport(ShmOptions);
        Assert.False(File.Exists(orphan));
        Assert.True(File.Exists(unrelated));
        await first.PushAsync(local, local.AddLease(2, random: new Random(3)), server.SharedMemoryAddress, remote.AddLease(2), 0, 2, TestContext.Current.CancellationToken);
        var live = Assert.Single(Segments);
        File.SetLastWriteTimeUtc(live, DateTime.UtcNow.AddMinutes(-5));

        await using var second = new SharedMemoryKvTransport(ShmOptions);

        Assert.True(File.Exists(live), "a segment another transport holds open is not an orphan");
    }

    [Fact]
    public void DomainId_SameDirectorySameId_OtherDirectoryOtherId()
    {
        var other = ShmDirectory + "-domain";
        Directory.CreateDirectory(other);
        try
        {
            var ids = Enumerable.Range(0, 8).AsParallel().Select(_ => SharedMemorySegment.DomainId(ShmDirectory)).ToArray();
            Assert.All(ids, id => Assert.Equal(ids[0], id));
            Assert.Matches("^[0-9a-f]{32}$", ids[0]!);
            Assert.NotEqual(ids[0], SharedMemorySegment.DomainId(other));
            Assert.Null(SharedMemorySegment.DomainId(Path.Combine(other, "missing")));
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public async Task PushAsync_SixteenConcurrentTransfers_AllCorrectAndNoSegmentsLeft()
    {
        var random = new Random(16);
        var workerA = new FakeKvBlockAccess(TestLayouts.Medium);
        var workerB = new FakeKvBlockAccess(TestLayouts.Medium);
        await using var server = new KvTransferServer(workerB, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);
        var pairs = Enumerable.Range(0, 16).Select(i => (A: workerA.AddLease(7, random: random), B: workerB.AddLease(7, random: i % 2 == 1 ? random : null))).ToArray();

        await Task.WhenAll(pairs.Select((pair, i) => i % 2 == 0
            ? transport.PushAsync(workerA, pair.A, server.SharedMemoryAddress, pair.B, 2, 5, TestContext.Current.CancellationToken)
            : transport.PullAsync(server.SharedMemoryAddress, pair.B, workerA, pair.A, 2, 5, TestContext.Current.CancellationToken)));

        Assert.All(pairs, pair => Assert.True(workerA.SameBlocks(pair.A, workerB, pair.B, 2, 5)));
        Assert.InRange(Segments.Length, 1, ShmOptions.MaxIdleSegmentsPerEndpoint);
        await transport.DisposeAsync();
        Assert.Empty(Segments);
    }

    [Fact]
    public async Task PushAsync_UnknownLease_ClearErrorAndSegmentDeleted()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(3, random: new Random(5));
        await using var server = new KvTransferServer(new FakeKvBlockAccess(TestLayouts.Small), options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, 31337, 0, 3, TestContext.Current.CancellationToken));

        Assert.Contains("unknown KV lease 31337", error.Message, StringComparison.Ordinal);
        Assert.Empty(Segments);
    }

    [Fact]
    public async Task PushAsync_LayoutMismatch_RefusedAndSegmentDeleted()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small with { NumLayers = 4 });
        var sourceLease = source.AddLease(3, random: new Random(6));
        var destinationLease = destination.AddLease(3);
        await using var server = new KvTransferServer(destination, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, destinationLease, 0, 3, TestContext.Current.CancellationToken));

        Assert.Contains("layout", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, destination.Writes);
        Assert.Empty(Segments);
    }

    [Fact]
    public async Task PullAsync_CancelledMidTransfer_ThrowsAndSegmentDeleted()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        var remoteLease = remote.AddLease(8, random: new Random(7));
        var localLease = local.AddLease(8);
        await using var server = new KvTransferServer(remote, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        local.BeforeWrite = layer =>
        {
            if (layer == 1)
            {
                cts.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            transport.PullAsync(server.SharedMemoryAddress, remoteLease, local, localLease, 0, 8, cts.Token));

        Assert.Empty(Segments);
        await TestLayouts.WaitUntilAsync(() => server.OpenConnections == 0, "the server closed the cancelled connection");
    }

    [Fact]
    public async Task PushAsync_CancelledWhileServerWrites_ThrowsAndSegmentDeleted()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var destination = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(8, random: new Random(8));
        var destinationLease = destination.AddLease(8);
        await using var server = new KvTransferServer(destination, options: ShmOptions);
        await using var transport = new SharedMemoryKvTransport(ShmOptions);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        destination.BeforeWrite = layer =>
        {
            if (layer == 2)
            {
                cts.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, destinationLease, 0, 8, cts.Token));

        Assert.Empty(Segments);
    }

    [Fact]
    public async Task PushAsync_SharedMemoryDirectoryMissing_ClearError()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(2);
        var options = ShmOptions with { SharedMemoryDirectory = Path.Combine(ShmDirectory, "missing") };
        await using var transport = new SharedMemoryKvTransport(options);

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, "shm://127.0.0.1:1", 1, 0, 2, TestContext.Current.CancellationToken));

        Assert.False(transport.IsAvailable);
        Assert.Contains("shared memory is unavailable", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PushAsync_SegmentOutsideServerDirectory_Refused()
    {
        var otherDirectory = ShmDirectory + "-other";
        Directory.CreateDirectory(otherDirectory);
        try
        {
            var source = new FakeKvBlockAccess(TestLayouts.Small);
            var destination = new FakeKvBlockAccess(TestLayouts.Small);
            var sourceLease = source.AddLease(2, random: new Random(9));
            var destinationLease = destination.AddLease(2);
            await using var server = new KvTransferServer(destination, options: ShmOptions);
            await using var transport = new SharedMemoryKvTransport(ShmOptions with { SharedMemoryDirectory = otherDirectory });

            var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
                transport.PushAsync(source, sourceLease, server.SharedMemoryAddress, destinationLease, 0, 2, TestContext.Current.CancellationToken));

            Assert.Contains("is not a KV segment", error.Message, StringComparison.Ordinal);
            Assert.Equal(0, destination.Writes);
            Assert.Empty(Directory.GetFiles(otherDirectory));
        }
        finally
        {
            Directory.Delete(otherDirectory, recursive: true);
        }
    }
}
