using System.Collections.Concurrent;
using System.Diagnostics;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// KV transfer between processes of one host at <c>shm://host:port</c> (the address of a <see cref="KvTransferServer"/>):
/// the KV goes through a memory-mapped segment in <see cref="KvTransferOptions.SharedMemoryDirectory"/> and only small
/// control frames (SHM_WRITE / SHM_READ, one SHM_LAYER notice per layer, END) cross the TCP connection. Both sides copy
/// layer by layer, one layer behind the other, so the two copies overlap.
/// </summary>
/// <remarks>
/// Segments are kept mapped and reused: each server address has a pool of idle segments (at most
/// <see cref="KvTransferOptions.MaxIdleSegmentsPerEndpoint"/>); a transfer takes the smallest one that fits or creates a
/// bigger one, and the server keeps its mappings too (<see cref="SharedMemoryMappings"/>), so a steady stream of transfers
/// pays no page faults. A segment whose transfer failed, timed out or was cancelled is deleted, never reused (the peer may
/// still be touching it); all idle segments are deleted on dispose; segments of a killed process are deleted by the
/// next transport created on the host (<see cref="SharedMemorySegment.SweepOrphans"/>).
/// </remarks>
public sealed class SharedMemoryKvTransport : IKvTransport, IAsyncDisposable
{
    public const string Scheme = "shm://";

    private readonly KvConnectionPool _pool;
    private readonly ConcurrentDictionary<string, List<SharedMemorySegment>> _segments = new(StringComparer.Ordinal);
    private readonly Lazy<string?> _domainId;
    private readonly SharedMemoryMappings _peerPools;
    private int _disposed;

    public SharedMemoryKvTransport(KvTransferOptions? options = null)
    {
        Options = (options ?? KvTransferOptions.Default).Validate();
        _pool = new KvConnectionPool(Scheme, Options);
        // Peers' KV pools, mapped once and kept: transfers land on blocks all over a pool, so every page is mapped up
        // front rather than faulted in inside a transfer.
        _peerPools = new SharedMemoryMappings(Options, populate: true);
        _domainId = new Lazy<string?>(() => SharedMemorySegment.DomainId(Options.SharedMemoryDirectory));
        SharedMemorySegment.SweepOrphans(Options.SharedMemoryDirectory);
    }

    public KvTransferOptions Options { get; }

    /// <summary>True when the segment directory exists (shared memory can be used on this host).</summary>
    public bool IsAvailable => Directory.Exists(Options.SharedMemoryDirectory);

    /// <summary>
    /// Id of the shared-memory domain (every process that sees the same segment directory has the same id); null when
    /// shared memory is unavailable. Workers advertise it so that peers on the same host pick shared memory.
    /// </summary>
    public string? DomainId => _domainId.Value;

    /// <summary>Idle segments kept for reuse, over all server addresses.</summary>
    public int IdleSegments => _segments.Values.Sum(list =>
    {
        lock (list)
        {
            return list.Count;
        }
    });

    public bool Supports(string address) => address is not null && address.StartsWith(Scheme, StringComparison.Ordinal);

    public async Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        KvTransferChecks.Range(source.Describe(sourceHandle), first, count, "source");
        await TransferAsync(destination, source, sourceHandle, destinationHandle, first, count, push: true, cancellationToken).ConfigureAwait(false);
    }

    public async Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        KvTransferChecks.Writable(destination.Describe(destinationHandle), destinationHandle, first, count);
        await TransferAsync(source, destination, destinationHandle, sourceHandle, first, count, push: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One transfer between our lease <paramref name="localHandle"/> and the peer's <paramref name="remoteHandle"/>:
    /// straight into or out of the peer's KV pool when it lives in shared memory (one copy), else through a segment.
    /// </summary>
    private async Task TransferAsync(string address, IKvBlockAccess local, long localHandle, long remoteHandle, int first, int count, bool push, CancellationToken cancellationToken)
    {
        KvConnectionPool.ParseAddress(Scheme, address);
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!IsAvailable)
        {
            throw new KvTransferException($"shared memory is unavailable: the directory {Options.SharedMemoryDirectory} does not exist (use a tcp:// address instead)");
        }
        var start = Stopwatch.GetTimestamp();
        var layout = local.Layout;
        var connection = await _pool.RentAsync(address, layout, cancellationToken).ConfigureAwait(false);
        var healthy = false;
        try
        {
            using (connection.BeginOperation(cancellationToken))
            {
                if (connection.PeerSharesPool && Options.DirectSharedMemory)
                {
                    await DirectAsync(connection, local, localHandle, remoteHandle, first, count, push, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await StagedAsync(connection, address, local, localHandle, remoteHandle, first, count, push, cancellationToken).ConfigureAwait(false);
                }
                healthy = true;
            }
        }
        finally
        {
            await _pool.ReturnAsync(address, connection, healthy).ConfigureAwait(false);
        }
        KvTransferMetrics.Record("shm", push ? "push" : "pull", count * layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
    }

    /// <summary>
    /// SHM_DIRECT: the peer pins its blocks and names its pool file and their physical ids; we copy each layer between our
    /// lease and the mapped pool (runs of consecutive ids in one call), then END releases the pin.
    /// </summary>
    private async Task DirectAsync(KvConnection connection, IKvBlockAccess local, long localHandle, long remoteHandle, int first, int count, bool push, CancellationToken cancellationToken)
    {
        var layout = local.Layout;
        connection.WriteRequest(KvFrameType.ShmDirect, remoteHandle, first, count, push ? 1 : 0);
        await connection.FlushAsync("the direct shared-memory request").ConfigureAwait(false);
        var (path, poolBytes, poolBlocks, blocks) = KvFrames.DecodeShmPool(await connection.ExpectAsync(KvFrameType.ShmPool, "the peer's shared pool").ConfigureAwait(false));
        connection.Consume();
        if (blocks.Length != count)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"{connection.Peer} named {blocks.Length} blocks for a transfer of {count}");
        }
        var mapping = _peerPools.Acquire(path, poolBytes);
        try
        {
            CopyLayers(mapping.Segment, layout, poolBlocks, blocks, local, localHandle, first, push, cancellationToken);
        }
        finally
        {
            _peerPools.Release(mapping);
        }
        connection.WriteEnd((uint)layout.NumLayers, count * layout.BytesPerBlock);
        await connection.FlushAsync("the end of the transfer").ConfigureAwait(false);
        await connection.ExpectAsync(KvFrameType.EndAck, "the end-of-transfer acknowledgement").ConfigureAwait(false);
        connection.Consume();
    }

    private static void CopyLayers(SharedMemorySegment pool, KvLayout layout, int poolBlocks, int[] blocks, IKvBlockAccess local, long localHandle, int first, bool push, CancellationToken cancellationToken)
    {
        var floats = layout.FloatsPerBlockLayer;
        for (var layer = 0; layer < layout.NumLayers; layer++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (var i = 0; i < blocks.Length;)
            {
                // Blocks with consecutive physical ids are contiguous in the pool: one copy for the run.
                var run = 1;
                while (i + run < blocks.Length && blocks[i + run] == blocks[i] + run)
                {
                    run++;
                }
                var keys = pool.Floats(ISharedKvBlockAccess.PoolByteOffset(layout, poolBlocks, layer, 0, blocks[i]), run * floats);
                var values = pool.Floats(ISharedKvBlockAccess.PoolByteOffset(layout, poolBlocks, layer, 1, blocks[i]), run * floats);
                if (push)
                {
                    local.Read(localHandle, layer, first + i, run, keys, values);
                }
                else
                {
                    local.Write(localHandle, layer, first + i, run, keys, values);
                }
                i += run;
            }
        }
    }

    /// <summary>Through a staging segment of ours (kept for reuse when the transfer completes, deleted otherwise).</summary>
    private async Task StagedAsync(KvConnection connection, string address, IKvBlockAccess local, long localHandle, long remoteHandle, int first, int count, bool push, CancellationToken cancellationToken)
    {
        var segment = RentSegment(address, SharedMemorySegment.BytesFor(local.Layout, count));
        var segmentHealthy = false;
        try
        {
            if (push)
            {
                await SegmentPushAsync(connection, segment, local, localHandle, remoteHandle, first, count, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await SegmentPullAsync(connection, address, segment, local, localHandle, remoteHandle, first, count, cancellationToken).ConfigureAwait(false);
            }
            segmentHealthy = true;
        }
        finally
        {
            ReturnSegment(address, segment, segmentHealthy);
        }
    }

    private static async Task SegmentPushAsync(KvConnection connection, SharedMemorySegment segment, IKvBlockAccess source, long sourceHandle, long destinationHandle, int first, int count, CancellationToken cancellationToken)
    {
        var layout = source.Layout;
        connection.WriteFrame(KvFrameType.ShmWrite, KvFrames.EncodeShmRequest(destinationHandle, first, count, segment.Length, segment.Path));
        await connection.FlushAsync("the shared-memory write request").ConfigureAwait(false);
        // The server copies layer l out of the segment while we copy layer l + 1 in.
        for (var layer = 0; layer < layout.NumLayers; layer++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            source.Read(sourceHandle, layer, first, count, segment.Side(layout, count, layer, 0), segment.Side(layout, count, layer, 1));
            connection.WriteCounter(KvFrameType.ShmLayer, (uint)layer);
            await connection.FlushAsync("a layer notice").ConfigureAwait(false);
        }
        connection.WriteEnd((uint)layout.NumLayers, SharedMemorySegment.BytesFor(layout, count));
        await connection.FlushAsync("the end of the transfer").ConfigureAwait(false);
        await connection.ExpectAsync(KvFrameType.EndAck, "the end-of-transfer acknowledgement").ConfigureAwait(false);
        connection.Consume();
    }

    private static async Task SegmentPullAsync(KvConnection connection, string source, SharedMemorySegment segment, IKvBlockAccess destination, long destinationHandle, long sourceHandle, int first, int count, CancellationToken cancellationToken)
    {
        var layout = destination.Layout;
        connection.WriteFrame(KvFrameType.ShmRead, KvFrames.EncodeShmRequest(sourceHandle, first, count, segment.Length, segment.Path));
        await connection.FlushAsync("the shared-memory read request").ConfigureAwait(false);
        // We copy layer l out of the segment while the server copies layer l + 1 in.
        for (var layer = 0; layer < layout.NumLayers; layer++)
        {
            await connection.ExpectCounterAsync(KvFrameType.ShmLayer, (uint)layer, "a layer").ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            destination.Write(destinationHandle, layer, first, count, segment.Side(layout, count, layer, 0), segment.Side(layout, count, layer, 1));
        }
        var end = await connection.ExpectAsync(KvFrameType.End, "the end of the transfer").ConfigureAwait(false);
        var (chunks, total) = KvConnection.DecodeEnd(end);
        connection.Consume();
        if (chunks != (uint)layout.NumLayers || total != SharedMemorySegment.BytesFor(layout, count))
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"{source} reported {chunks} layers / {total} bytes for a shared-memory read");
        }
        connection.WriteFrame(KvFrameType.EndAck, default);
        await connection.FlushAsync("the end-of-transfer acknowledgement").ConfigureAwait(false);
    }

    /// <summary>The smallest idle segment for <paramref name="address"/> that holds <paramref name="bytes"/>, or a new one.</summary>
    private SharedMemorySegment RentSegment(string address, long bytes)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_segments.TryGetValue(address, out var idle))
        {
            lock (idle)
            {
                var best = -1;
                for (var i = 0; i < idle.Count; i++)
                {
                    if (idle[i].Length >= bytes && (best < 0 || idle[i].Length < idle[best].Length))
                    {
                        best = i;
                    }
                }
                if (best >= 0)
                {
                    var segment = idle[best];
                    idle.RemoveAt(best);
                    return segment;
                }
            }
        }
        // Rounded up to 2 MiB so that slightly longer prompts reuse the segment.
        const long granule = 2L << 20;
        return SharedMemorySegment.Create(Options.SharedMemoryDirectory, bytes <= granule ? bytes : (bytes + granule - 1) / granule * granule);
    }

    /// <summary>Keeps a segment whose transfer completed (dropping the smallest beyond the limit); deletes any other.</summary>
    private void ReturnSegment(string address, SharedMemorySegment segment, bool healthy)
    {
        if (!healthy || Volatile.Read(ref _disposed) != 0 || Options.MaxIdleSegmentsPerEndpoint == 0)
        {
            segment.Dispose();
            return;
        }
        var idle = _segments.GetOrAdd(address, static _ => []);
        SharedMemorySegment? drop = null;
        lock (idle)
        {
            idle.Add(segment);
            if (idle.Count > Options.MaxIdleSegmentsPerEndpoint)
            {
                var smallest = 0;
                for (var i = 1; i < idle.Count; i++)
                {
                    if (idle[i].Length < idle[smallest].Length)
                    {
                        smallest = i;
                    }
                }
                drop = idle[smallest];
                idle.RemoveAt(smallest);
            }
        }
        drop?.Dispose();
        if (Volatile.Read(ref _disposed) != 0)
        {
            DisposeSegments();
        }
    }

    private void DisposeSegments()
    {
        foreach (var idle in _segments.Values)
        {
            SharedMemorySegment[] segments;
            lock (idle)
            {
                segments = [.. idle];
                idle.Clear();
            }
            foreach (var segment in segments)
            {
                segment.Dispose();
            }
        }
    }

    /// <summary>Closes the connections and deletes every idle segment; segments of transfers in flight are deleted when they end.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        DisposeSegments();
        await _pool.DisposeAsync().ConfigureAwait(false);
        _peerPools.Dispose();
    }
}
