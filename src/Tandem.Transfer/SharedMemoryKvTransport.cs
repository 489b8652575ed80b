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
    private int _disposed;

    public SharedMemoryKvTransport(KvTransferOptions? options = null)
    {
        Options = (options ?? KvTransferOptions.Default).Validate();
        _pool = new KvConnectionPool(Scheme, Options);
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
        KvConnectionPool.ParseAddress(Scheme, destination);
        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var layout = source.Layout;
        var bytes = SharedMemorySegment.BytesFor(layout, count);
        var segment = RentSegment(destination, bytes);
        var segmentHealthy = false;
        try
        {
            var connection = await _pool.RentAsync(destination, layout, cancellationToken).ConfigureAwait(false);
            var healthy = false;
            try
            {
                using (connection.BeginOperation(cancellationToken))
                {
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
                    connection.WriteEnd((uint)layout.NumLayers, bytes);
                    await connection.FlushAsync("the end of the transfer").ConfigureAwait(false);
                    await connection.ExpectAsync(KvFrameType.EndAck, "the end-of-transfer acknowledgement").ConfigureAwait(false);
                    connection.Consume();
                    healthy = true;
                }
            }
            finally
            {
                await _pool.ReturnAsync(destination, connection, healthy).ConfigureAwait(false);
            }
            segmentHealthy = true;
        }
        finally
        {
            ReturnSegment(destination, segment, segmentHealthy);
        }
        KvTransferMetrics.Record("shm", "push", count * layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
    }

    public async Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        KvTransferChecks.Writable(destination.Describe(destinationHandle), destinationHandle, first, count);
        KvConnectionPool.ParseAddress(Scheme, source);
        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var layout = destination.Layout;
        var bytes = SharedMemorySegment.BytesFor(layout, count);
        var segment = RentSegment(source, bytes);
        var segmentHealthy = false;
        try
        {
            var connection = await _pool.RentAsync(source, layout, cancellationToken).ConfigureAwait(false);
            var healthy = false;
            try
            {
                using (connection.BeginOperation(cancellationToken))
                {
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
                    if (chunks != (uint)layout.NumLayers || total != bytes)
                    {
                        throw new KvProtocolException(KvErrorCode.Protocol, $"{source} reported {chunks} layers / {total} bytes for a shared-memory read");
                    }
                    connection.WriteFrame(KvFrameType.EndAck, default);
                    await connection.FlushAsync("the end-of-transfer acknowledgement").ConfigureAwait(false);
                    healthy = true;
                }
            }
            finally
            {
                await _pool.ReturnAsync(source, connection, healthy).ConfigureAwait(false);
            }
            segmentHealthy = true;
        }
        finally
        {
            ReturnSegment(source, segment, segmentHealthy);
        }
        KvTransferMetrics.Record("shm", "pull", count * layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
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
    }
}
