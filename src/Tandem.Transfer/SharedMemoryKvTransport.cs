using System.Diagnostics;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// KV transfer between processes of one host at <c>shm://host:port</c> (the address of a <see cref="KvTransferServer"/>):
/// the KV goes through a memory-mapped segment in <see cref="KvTransferOptions.SharedMemoryDirectory"/> and only small
/// control frames (SHM_WRITE / SHM_READ, one acknowledgement per layer, END) cross the TCP connection. The caller creates
/// the segment and deletes it when the transfer ends, whether it succeeded, failed or was cancelled.
/// </summary>
public sealed class SharedMemoryKvTransport : IKvTransport, IAsyncDisposable
{
    public const string Scheme = "shm://";

    private readonly KvConnectionPool _pool;

    public SharedMemoryKvTransport(KvTransferOptions? options = null)
    {
        Options = (options ?? KvTransferOptions.Default).Validate();
        _pool = new KvConnectionPool(Scheme, Options);
    }

    public KvTransferOptions Options { get; }

    /// <summary>True when the segment directory exists (shared memory can be used on this host).</summary>
    public bool IsAvailable => Directory.Exists(Options.SharedMemoryDirectory);

    public bool Supports(string address) => address is not null && address.StartsWith(Scheme, StringComparison.Ordinal);

    public async Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        KvTransferChecks.Range(source.Describe(sourceHandle), first, count, "source");
        KvConnectionPool.ParseAddress(Scheme, destination);
        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var layout = source.Layout;
        using var segment = SharedMemorySegment.Create(Options.SharedMemoryDirectory, SharedMemorySegment.BytesFor(layout, count));
        for (var layer = 0; layer < layout.NumLayers; layer++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            source.Read(sourceHandle, layer, first, count, segment.Side(layout, count, layer, 0), segment.Side(layout, count, layer, 1));
        }
        var connection = await _pool.RentAsync(destination, layout, cancellationToken).ConfigureAwait(false);
        var healthy = false;
        try
        {
            using (connection.BeginOperation(cancellationToken))
            {
                connection.WriteFrame(KvFrameType.ShmWrite, KvFrames.EncodeShmRequest(destinationHandle, first, count, segment.Length, segment.Path));
                await connection.FlushAsync("the shared-memory write request").ConfigureAwait(false);
                for (var layer = 0; layer < layout.NumLayers; layer++)
                {
                    await connection.ExpectAckAsync((uint)layer, "a layer acknowledgement").ConfigureAwait(false);
                }
                await connection.ExpectAsync(KvFrameType.EndAck, "the end-of-transfer acknowledgement").ConfigureAwait(false);
                connection.Consume();
                healthy = true;
            }
        }
        finally
        {
            await _pool.ReturnAsync(destination, connection, healthy).ConfigureAwait(false);
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
        using var segment = SharedMemorySegment.Create(Options.SharedMemoryDirectory, SharedMemorySegment.BytesFor(layout, count));
        var connection = await _pool.RentAsync(source, layout, cancellationToken).ConfigureAwait(false);
        var healthy = false;
        try
        {
            using (connection.BeginOperation(cancellationToken))
            {
                connection.WriteFrame(KvFrameType.ShmRead, KvFrames.EncodeShmRequest(sourceHandle, first, count, segment.Length, segment.Path));
                await connection.FlushAsync("the shared-memory read request").ConfigureAwait(false);
                for (var layer = 0; layer < layout.NumLayers; layer++)
                {
                    await connection.ExpectAckAsync((uint)layer, "a layer").ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                    destination.Write(destinationHandle, layer, first, count, segment.Side(layout, count, layer, 0), segment.Side(layout, count, layer, 1));
                }
                var end = await connection.ExpectAsync(KvFrameType.End, "the end of the transfer").ConfigureAwait(false);
                var (chunks, bytes) = KvConnection.DecodeEnd(end);
                connection.Consume();
                if (chunks != (uint)layout.NumLayers || bytes != SharedMemorySegment.BytesFor(layout, count))
                {
                    throw new KvProtocolException(KvErrorCode.Protocol, $"{source} reported {chunks} layers / {bytes} bytes for a shared-memory read");
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
        KvTransferMetrics.Record("shm", "pull", count * layout.BytesPerBlock, Stopwatch.GetElapsedTime(start));
    }

    public ValueTask DisposeAsync() => _pool.DisposeAsync();
}
