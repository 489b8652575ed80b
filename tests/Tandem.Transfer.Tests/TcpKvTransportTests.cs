using System.Diagnostics;
using Tandem.Abstractions;

namespace Tandem.Transfer.Tests;

public class TcpKvTransportTests
{
    private static readonly KvTransferOptions SmallChunks = new() { MaxChunkBytes = 4096, ChunkTimeout = TimeSpan.FromSeconds(10) };

    [Theory]
    [InlineData(1, 0, 1)]
    [InlineData(2, 3, 7)]
    [InlineData(3, 5, 13)]
    public async Task PushAsync_RandomKv_DestinationIsByteIdentical(int seed, int first, int count)
    {
        var random = new Random(seed);
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(first + count + 2, random: random);
        var destinationLease = destination.AddLease(first + count + 2, cached: first);
        await using var server = new KvTransferServer(destination, options: SmallChunks);
        await using var transport = new TcpKvTransport(SmallChunks);

        await transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, first, count, TestContext.Current.CancellationToken);

        Assert.True(source.SameBlocks(sourceLease, destination, destinationLease, first, count));
        Assert.True(destination.IsZero(destinationLease, first + count, 2));
    }

    [Theory]
    [InlineData(4, 0, 3)]
    [InlineData(5, 2, 11)]
    public async Task PullAsync_RandomKv_DestinationIsByteIdentical(int seed, int first, int count)
    {
        var random = new Random(seed);
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        var remoteLease = remote.AddLease(first + count, cached: first, random: random);
        var localLease = local.AddLease(first + count, cached: first);
        var options = new KvTransferOptions { MaxChunkBytes = 100_000 };
        await using var server = new KvTransferServer(remote, options: options);
        await using var transport = new TcpKvTransport(options);

        await transport.PullAsync(server.TcpAddress, remoteLease, local, localLease, first, count, TestContext.Current.CancellationToken);

        Assert.True(remote.SameBlocks(remoteLease, local, localLease, first, count));
    }

    [Fact]
    public async Task PushAsync_SixteenConcurrentTransfers_AllCorrect()
    {
        var random = new Random(16);
        var workerA = new FakeKvBlockAccess(TestLayouts.Medium);
        var workerB = new FakeKvBlockAccess(TestLayouts.Medium);
        var options = new KvTransferOptions { MaxChunkBytes = 64 * 1024 };
        await using var server = new KvTransferServer(workerB, options: options);
        await using var transport = new TcpKvTransport(options);
        var pairs = Enumerable.Range(0, 16).Select(i => (A: workerA.AddLease(9, random: random), B: workerB.AddLease(9, random: i % 2 == 1 ? random : null))).ToArray();

        await Task.WhenAll(pairs.Select((pair, i) => i % 2 == 0
            ? transport.PushAsync(workerA, pair.A, server.TcpAddress, pair.B, 1, 8, TestContext.Current.CancellationToken)
            : transport.PullAsync(server.TcpAddress, pair.B, workerA, pair.A, 1, 8, TestContext.Current.CancellationToken)));

        Assert.All(pairs, pair => Assert.True(workerA.SameBlocks(pair.A, workerB, pair.B, 1, 8)));
        await Poll.EqualAsync(16L, () => server.CompletedTransfers);
        Assert.Equal(0, server.FailedConnections);
    }

    [Fact]
    public async Task PushAsync_SequentialTransfers_ReuseOneConnection()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        await using var server = new KvTransferServer(destination, options: SmallChunks);
        await using var transport = new TcpKvTransport(SmallChunks);
        var random = new Random(7);
        for (var i = 0; i < 5; i++)
        {
            var from = source.AddLease(6, random: random);
            var to = destination.AddLease(6);
            await transport.PushAsync(source, from, server.TcpAddress, to, 0, 6, TestContext.Current.CancellationToken);
            Assert.True(source.SameBlocks(from, destination, to, 0, 6));
        }

        Assert.Equal(1, server.AcceptedConnections);
        await Poll.EqualAsync(5L, () => server.CompletedTransfers);
    }

    [Fact]
    public async Task PushAsync_LayoutMismatch_RefusedBeforeAnyKvMoves()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small with { HeadDim = 16 });
        var sourceLease = source.AddLease(4, random: new Random(1));
        var destinationLease = destination.AddLease(4);
        await using var server = new KvTransferServer(destination);
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 0, 4, TestContext.Current.CancellationToken));

        Assert.Contains("layout", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, source.Reads);
        Assert.Equal(0, destination.Writes);
    }

    [Fact]
    public async Task PullAsync_LayoutMismatch_RefusedBeforeAnyKvMoves()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Small with { ModelFingerprint = "other-model" });
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        var remoteLease = remote.AddLease(4, random: new Random(1));
        var localLease = local.AddLease(4);
        await using var server = new KvTransferServer(remote);
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PullAsync(server.TcpAddress, remoteLease, local, localLease, 0, 4, TestContext.Current.CancellationToken));

        Assert.Contains("other-model", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, remote.Reads);
        Assert.Equal(0, local.Writes);
    }

    [Fact]
    public async Task PushAsync_UnknownDestinationLease_ClearErrorAndServerKeepsServing()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(4, random: new Random(2));
        await using var server = new KvTransferServer(destination);
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, server.TcpAddress, 424242, 0, 4, TestContext.Current.CancellationToken));
        Assert.Contains("unknown KV lease 424242", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, source.Reads);

        var destinationLease = destination.AddLease(4);
        await transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 0, 4, TestContext.Current.CancellationToken);
        Assert.True(source.SameBlocks(sourceLease, destination, destinationLease, 0, 4));
    }

    [Fact]
    public async Task PullAsync_UnknownSourceLease_ClearError()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Small);
        var local = new FakeKvBlockAccess(TestLayouts.Small);
        var localLease = local.AddLease(4);
        await using var server = new KvTransferServer(remote);
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PullAsync(server.TcpAddress, 999, local, localLease, 0, 4, TestContext.Current.CancellationToken));

        Assert.Contains("unknown KV lease 999", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, local.Writes);
    }

    [Fact]
    public async Task PushAsync_IntoCachedDestinationBlocks_Refused()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(4, random: new Random(3));
        var destinationLease = destination.AddLease(4, cached: 2);
        await using var server = new KvTransferServer(destination);
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 1, 3, TestContext.Current.CancellationToken));

        Assert.Contains("cached", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, destination.Writes);
    }

    [Fact]
    public async Task PushAsync_ByteFlippedInTransit_ChecksumMismatchReported()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var destination = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(40, random: new Random(4));
        var destinationLease = destination.AddLease(40);
        await using var server = new KvTransferServer(destination);
        await using var proxy = new TcpFaultProxy(server.EndPoint) { CorruptClientToServerAt = 200_000 };
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, proxy.Address(TcpKvTransport.Scheme), destinationLease, 0, 40, TestContext.Current.CancellationToken));

        Assert.Contains("checksum", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, destination.Writes);
    }

    [Fact]
    public async Task PullAsync_ByteFlippedInTransit_ChecksumMismatchReported()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        var remoteLease = remote.AddLease(40, random: new Random(5));
        var localLease = local.AddLease(40);
        await using var server = new KvTransferServer(remote);
        await using var proxy = new TcpFaultProxy(server.EndPoint) { CorruptServerToClientAt = 300_000 };
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PullAsync(proxy.Address(TcpKvTransport.Scheme), remoteLease, local, localLease, 0, 40, TestContext.Current.CancellationToken));

        Assert.Contains("checksum", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, local.Writes);
    }

    [Fact]
    public async Task PullAsync_ServerStallsMidChunk_ChunkTimeoutFires()
    {
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        var remoteLease = remote.AddLease(40, random: new Random(6));
        var localLease = local.AddLease(40);
        await using var server = new KvTransferServer(remote);
        await using var proxy = new TcpFaultProxy(server.EndPoint) { StallServerToClientAfter = 100_000 };
        await using var transport = new TcpKvTransport(new KvTransferOptions { ChunkTimeout = TimeSpan.FromMilliseconds(500) });
        var started = Stopwatch.GetTimestamp();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PullAsync(proxy.Address(TcpKvTransport.Scheme), remoteLease, local, localLease, 0, 40, TestContext.Current.CancellationToken));

        Assert.Contains("timed out after 500 ms", error.Message, StringComparison.Ordinal);
        Assert.InRange(Stopwatch.GetElapsedTime(started).TotalSeconds, 0.4, 5);
    }

    [Fact]
    public async Task PushAsync_ServerStopsAcknowledging_ChunkTimeoutFires()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var destination = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(40, random: new Random(7));
        var destinationLease = destination.AddLease(40);
        await using var server = new KvTransferServer(destination);
        // Handshake reply (9 bytes) and READY (8 bytes) pass; no chunk acknowledgement ever does.
        await using var proxy = new TcpFaultProxy(server.EndPoint) { StallServerToClientAfter = 17 };
        await using var transport = new TcpKvTransport(new KvTransferOptions { ChunkTimeout = TimeSpan.FromMilliseconds(500) });

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, proxy.Address(TcpKvTransport.Scheme), destinationLease, 0, 40, TestContext.Current.CancellationToken));

        Assert.Contains("timed out", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PushAsync_CancelledMidTransfer_ThrowsAndReturnsEveryBuffer()
    {
        var clientPool = new CountingFloatPool();
        var serverPool = new CountingFloatPool();
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var destination = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(20, random: new Random(8));
        var destinationLease = destination.AddLease(20);
        await using var server = new KvTransferServer(destination, options: new KvTransferOptions { MaxChunkBytes = 64 * 1024, FloatPool = serverPool });
        await using var transport = new TcpKvTransport(new KvTransferOptions { MaxChunkBytes = 64 * 1024, FloatPool = clientPool });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        source.BeforeRead = layer =>
        {
            if (layer == 2)
            {
                cts.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 0, 20, cts.Token));

        // The sender reads the KV straight into its send buffer (no chunk buffers); the receiver rents and returns them.
        Assert.Equal(0, clientPool.Outstanding);
        await TestLayouts.WaitUntilAsync(() => server.OpenConnections == 0, "the server closed the cancelled connection");
        Assert.True(serverPool.Rented > 0);
        Assert.Equal(0, serverPool.Outstanding);
    }

    [Fact]
    public async Task PullAsync_CancelledMidTransfer_ThrowsAndReturnsEveryBuffer()
    {
        var clientPool = new CountingFloatPool();
        var serverPool = new CountingFloatPool();
        var remote = new FakeKvBlockAccess(TestLayouts.Medium);
        var local = new FakeKvBlockAccess(TestLayouts.Medium);
        var remoteLease = remote.AddLease(20, random: new Random(9));
        var localLease = local.AddLease(20);
        await using var server = new KvTransferServer(remote, options: new KvTransferOptions { MaxChunkBytes = 64 * 1024, FloatPool = serverPool });
        await using var transport = new TcpKvTransport(new KvTransferOptions { MaxChunkBytes = 64 * 1024, FloatPool = clientPool });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        local.BeforeWrite = layer =>
        {
            if (layer == 1)
            {
                cts.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            transport.PullAsync(server.TcpAddress, remoteLease, local, localLease, 0, 20, cts.Token));

        Assert.Equal(0, clientPool.Outstanding);
        await TestLayouts.WaitUntilAsync(() => server.OpenConnections == 0, "the server closed the cancelled connection");
        Assert.Equal(0, serverPool.Outstanding);
    }

    [Fact]
    public async Task PushAsync_ServerDisposedMidTransfer_ClearErrorToCaller()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Medium);
        var destination = new FakeKvBlockAccess(TestLayouts.Medium);
        var sourceLease = source.AddLease(20, random: new Random(10));
        var destinationLease = destination.AddLease(20);
        var options = new KvTransferOptions { MaxChunkBytes = 64 * 1024 };
        var server = new KvTransferServer(destination, options: options);
        await using var transport = new TcpKvTransport(options);
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var gate = new ManualResetEventSlim();
        destination.BeforeWrite = layer =>
        {
            if (layer == 1)
            {
                reached.TrySetResult();
                gate.Wait(TimeSpan.FromSeconds(10));
            }
        };

        var push = transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 0, 20, TestContext.Current.CancellationToken);
        await reached.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        var stopping = server.DisposeAsync().AsTask();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() => push.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        gate.Set();
        await stopping;

        Assert.Matches("closed the KV connection|connection to .* lost", error.Message);
    }

    [Fact]
    public async Task PushAsync_NoServerListening_ClearError()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(2);
        int port;
        await using (var server = new KvTransferServer(new FakeKvBlockAccess(TestLayouts.Small)))
        {
            port = server.EndPoint.Port;
        }
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, $"tcp://127.0.0.1:{port}", 1, 0, 2, TestContext.Current.CancellationToken));

        Assert.Contains("cannot connect", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tcp://")]
    [InlineData("tcp://host-without-port")]
    [InlineData("http://127.0.0.1:80")]
    public async Task PushAsync_InvalidAddress_ClearError(string address)
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(2);
        await using var transport = new TcpKvTransport();

        var error = await Assert.ThrowsAnyAsync<KvTransferException>(() =>
            transport.PushAsync(source, sourceLease, address, 1, 0, 2, TestContext.Current.CancellationToken));

        Assert.Contains("invalid KV address", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PushAsync_Completed_RecordsMetrics()
    {
        var source = new FakeKvBlockAccess(TestLayouts.Small);
        var destination = new FakeKvBlockAccess(TestLayouts.Small);
        var sourceLease = source.AddLease(5, random: new Random(11));
        var destinationLease = destination.AddLease(5);
        await using var server = new KvTransferServer(destination);
        await using var transport = new TcpKvTransport();
        var recorded = 0L;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == KvTransferMetrics.MeterName && instrument.Name == "tandem_kv_transfer_bytes_total")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "transport" && (string?)tag.Value == "tcp" && value == 5 * TestLayouts.Small.BytesPerBlock)
                {
                    Interlocked.Increment(ref recorded);
                }
            }
        });
        listener.Start();

        await transport.PushAsync(source, sourceLease, server.TcpAddress, destinationLease, 0, 5, TestContext.Current.CancellationToken);

        Assert.True(Interlocked.Read(ref recorded) >= 1);
    }
}
