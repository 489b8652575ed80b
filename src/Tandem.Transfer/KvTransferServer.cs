using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// Serves one worker's KV memory to <see cref="TcpKvTransport"/> (<see cref="TcpAddress"/>) and
/// <see cref="SharedMemoryKvTransport"/> (<see cref="SharedMemoryAddress"/>, same host only). Each connection is handled
/// on its own task, one transfer after another; a failing connection gets an error frame and is closed while the
/// others go on.
/// </summary>
public sealed class KvTransferServer : IAsyncDisposable
{
    private readonly IKvBlockAccess _access;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<KvConnection, Task> _connections = new();
    private readonly Task _acceptLoop;
    private readonly SharedMemoryMappings _mappings;
    private readonly Timer _evictMappings;
    private long _accepted;
    private long _failed;
    private long _transfers;
    private int _disposed;

    /// <summary>Listens on <paramref name="endpoint"/> (port 0 picks a free port, see <see cref="EndPoint"/>) and starts serving.</summary>
    public KvTransferServer(IKvBlockAccess access, IPEndPoint endpoint, KvTransferOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(access);
        ArgumentNullException.ThrowIfNull(endpoint);
        _access = access;
        Options = (options ?? KvTransferOptions.Default).Validate();
        _listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(endpoint);
            _listener.Listen(512);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _mappings = new SharedMemoryMappings(Options);
        var evictEvery = TimeSpan.FromTicks(Math.Clamp(Options.IdleTimeout.Ticks / 4, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute));
        _evictMappings = new Timer(static state => ((SharedMemoryMappings)state!).Evict(), _mappings, evictEvery, evictEvery);
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Listens on <paramref name="host"/> (an IP address) and <paramref name="port"/>.</summary>
    public KvTransferServer(IKvBlockAccess access, string host = "127.0.0.1", int port = 0, KvTransferOptions? options = null)
        : this(access, new IPEndPoint(IPAddress.Parse(host), port), options)
    {
    }

    public KvTransferOptions Options { get; }

    /// <summary>The bound address (the real port when 0 was asked for).</summary>
    public IPEndPoint EndPoint { get; }

    public string TcpAddress => TcpKvTransport.Scheme + HostPort;

    public string SharedMemoryAddress => SharedMemoryKvTransport.Scheme + HostPort;

    /// <summary>
    /// The address to advertise: <see cref="TcpAddress"/> with the shared-memory domain of this host appended
    /// (<c>tcp://host:port?shm=ID</c>) when shared memory is available, so that <see cref="SameHostKvTransport"/> on a
    /// peer that sees the same domain uses shared memory and every other peer TCP.
    /// </summary>
    public string AdvertisedAddress => SameHostKvTransport.Advertise(TcpAddress, SharedMemorySegment.DomainId(Options.SharedMemoryDirectory));

    /// <summary>The served KV memory when its pool is a shared-memory file (clients on this host then copy directly).</summary>
    private ISharedKvBlockAccess? SharedPool => _access is ISharedKvBlockAccess { PoolFile: not null } shared ? shared : null;

    /// <summary>Shared-memory segments mapped now (kept between transfers).</summary>
    public int MappedSegments => _mappings.Count;

    /// <summary>Connections accepted so far.</summary>
    public long AcceptedConnections => Interlocked.Read(ref _accepted);

    /// <summary>Connections closed because of an error (protocol, checksum, refused request, timeout).</summary>
    public long FailedConnections => Interlocked.Read(ref _failed);

    /// <summary>Transfers served to completion.</summary>
    public long CompletedTransfers => Interlocked.Read(ref _transfers);

    /// <summary>Connections open now.</summary>
    public int OpenConnections => _connections.Count;

    private string HostPort => EndPoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{EndPoint.Address}]:{EndPoint.Port}" : $"{EndPoint.Address}:{EndPoint.Port}";

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }
                continue;
            }
            Interlocked.Increment(ref _accepted);
            var connection = new KvConnection(socket, Options, socket.RemoteEndPoint?.ToString() ?? "client");
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connections[connection] = gate.Task;
            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeAsync(connection).ConfigureAwait(false);
                }
                finally
                {
                    _connections.TryRemove(connection, out _);
                    gate.TrySetResult();
                }
            });
            if (_stopping.IsCancellationRequested)
            {
                connection.Abort();
            }
        }
    }

    private async Task ServeAsync(KvConnection connection)
    {
        try
        {
            using (connection.BeginOperation(_stopping.Token))
            {
                await HandshakeAsync(connection).ConfigureAwait(false);
                while (true)
                {
                    KvFrameType type;
                    System.Buffers.ReadOnlySequence<byte> payload;
                    try
                    {
                        (type, payload) = await connection.ReadFrameAsync("a request", idle: true).ConfigureAwait(false);
                    }
                    catch (KvConnectionClosedException)
                    {
                        return;
                    }
                    switch (type)
                    {
                        case KvFrameType.WriteBegin:
                            await ServeWriteAsync(connection, payload).ConfigureAwait(false);
                            break;
                        case KvFrameType.ReadBegin:
                            await ServeReadAsync(connection, payload).ConfigureAwait(false);
                            break;
                        case KvFrameType.ShmWrite:
                            await ServeSharedMemoryAsync(connection, payload, write: true).ConfigureAwait(false);
                            break;
                        case KvFrameType.ShmRead:
                            await ServeSharedMemoryAsync(connection, payload, write: false).ConfigureAwait(false);
                            break;
                        case KvFrameType.ShmDirect:
                            await ServeDirectAsync(connection, payload).ConfigureAwait(false);
                            break;
                        default:
                            throw new KvProtocolException(KvErrorCode.Protocol, $"unexpected {type} frame where a request was expected");
                    }
                    Interlocked.Increment(ref _transfers);
                }
            }
        }
        catch (KvProtocolException e)
        {
            Interlocked.Increment(ref _failed);
            await connection.SendErrorAndCloseAsync(e.Code, e.Message).ConfigureAwait(false);
        }
        catch (KvTransferException e)
        {
            Interlocked.Increment(ref _failed);
            await connection.SendErrorAndCloseAsync(KvErrorCode.Refused, e.Message).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _failed);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or ObjectDisposedException or SocketException)
        {
            Interlocked.Increment(ref _failed);
            await connection.SendErrorAndCloseAsync(KvErrorCode.Internal, $"KV server error: {e.Message}").ConfigureAwait(false);
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task HandshakeAsync(KvConnection connection)
    {
        var (type, payload) = await connection.ReadFrameAsync("the handshake").ConfigureAwait(false);
        if (type != KvFrameType.Hello)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"expected a handshake, got a {type} frame");
        }
        var (version, layout) = KvFrames.DecodeHello(payload);
        connection.Consume();
        if (layout is null)
        {
            throw new KvProtocolException(KvErrorCode.Version, $"unsupported KV protocol version {version} (this server speaks {KvFrames.Version})");
        }
        if (_access.Layout.Mismatch(layout) is { } mismatch)
        {
            throw new KvProtocolException(KvErrorCode.LayoutMismatch, $"KV layout mismatch, transfer refused: {mismatch}");
        }
        connection.Layout = layout;
        connection.WriteFrame(KvFrameType.HelloOk, [KvFrames.Version, SharedPool is null ? (byte)0 : KvFrames.SharedPoolFlag]);
        await connection.FlushAsync("the handshake reply").ConfigureAwait(false);
    }

    private async Task ServeWriteAsync(KvConnection connection, System.Buffers.ReadOnlySequence<byte> payload)
    {
        var (handle, first, count, _) = KvFrames.DecodeRequest(payload, "write request");
        connection.Consume();
        await ServeLeaseAsync(handle, first, count, write: true, async () =>
        {
            connection.WriteFrame(KvFrameType.Ready, default);
            await connection.FlushAsync("the write request's answer").ConfigureAwait(false);
            await KvBlockStream.ReceiveAsync(connection, _access, handle, first, count, _stopping.Token).ConfigureAwait(false);
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Checks the requested range of the lease (a write must not touch its cached blocks), then runs the transfer. A
    /// write that breaks off is reported to the KV's owner (<see cref="IKvBlockAccess.WriteFailed"/>), so whoever waits
    /// for that KV stops waiting.
    /// </summary>
    private async Task ServeLeaseAsync(long handle, int first, int count, bool write, Func<Task> transfer)
    {
        var lease = _access.Describe(handle);
        if (!write)
        {
            KvTransferChecks.Range(lease, first, count, "source");
            await transfer().ConfigureAwait(false);
            return;
        }
        KvTransferChecks.Writable(lease, handle, first, count);
        try
        {
            await transfer().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _access.WriteFailed(handle, e.Message);
            throw;
        }
    }

    private async Task ServeReadAsync(KvConnection connection, System.Buffers.ReadOnlySequence<byte> payload)
    {
        var (handle, first, count, maxChunkBytes) = KvFrames.DecodeRequest(payload, "read request");
        connection.Consume();
        var chunkBytes = Math.Clamp(maxChunkBytes, 1024, Options.MaxChunkBytes);
        await ServeLeaseAsync(handle, first, count, write: false, () => KvBlockStream.SendAsync(connection, _access, handle, first, count, chunkBytes, _stopping.Token)).ConfigureAwait(false);
    }

    private async Task ServeSharedMemoryAsync(KvConnection connection, System.Buffers.ReadOnlySequence<byte> payload, bool write)
    {
        var (handle, first, count, segmentBytes, path) = KvFrames.DecodeShmRequest(payload);
        connection.Consume();
        await ServeLeaseAsync(handle, first, count, write, () => ServeSegmentAsync(connection, handle, first, count, segmentBytes, path, write)).ConfigureAwait(false);
    }

    private async Task ServeSegmentAsync(KvConnection connection, long handle, int first, int count, long segmentBytes, string path, bool write)
    {
        var layout = _access.Layout;
        var bytes = SharedMemorySegment.BytesFor(layout, count);
        if (segmentBytes < bytes)
        {
            throw new KvProtocolException(KvErrorCode.SharedMemory, $"shared-memory request declares a segment of {segmentBytes} bytes, {count} blocks need {bytes}");
        }
        var mapping = _mappings.Acquire(path, segmentBytes);
        try
        {
            var segment = mapping.Segment;
            for (var layer = 0; layer < layout.NumLayers; layer++)
            {
                _stopping.Token.ThrowIfCancellationRequested();
                if (write)
                {
                    // The client fills layer l + 1 while we copy layer l out.
                    await connection.ExpectCounterAsync(KvFrameType.ShmLayer, (uint)layer, "a layer").ConfigureAwait(false);
                    _access.Write(handle, layer, first, count, segment.Side(layout, count, layer, 0), segment.Side(layout, count, layer, 1));
                }
                else
                {
                    _access.Read(handle, layer, first, count, segment.Side(layout, count, layer, 0), segment.Side(layout, count, layer, 1));
                    connection.WriteCounter(KvFrameType.ShmLayer, (uint)layer);
                    await connection.FlushAsync("a layer notice").ConfigureAwait(false);
                }
            }
        }
        finally
        {
            // Released before the last frame of the exchange, so the client's next transfer (which may map a new segment
            // after deleting this one) finds the mapping idle and evictable.
            _mappings.Release(mapping);
        }
        if (write)
        {
            var (layers, total) = KvConnection.DecodeEnd(await connection.ExpectAsync(KvFrameType.End, "the end of the transfer").ConfigureAwait(false));
            connection.Consume();
            if (layers != (uint)layout.NumLayers || total != bytes)
            {
                throw new KvProtocolException(KvErrorCode.Protocol, $"shared-memory write ended with {layers} layers / {total} bytes, expected {layout.NumLayers} / {bytes}");
            }
            connection.WriteFrame(KvFrameType.EndAck, default);
            await connection.FlushAsync("the end-of-transfer acknowledgement").ConfigureAwait(false);
        }
        else
        {
            connection.WriteEnd((uint)layout.NumLayers, bytes);
            await connection.FlushAsync("the end of the transfer").ConfigureAwait(false);
            await connection.ExpectAsync(KvFrameType.EndAck, "the end-of-transfer acknowledgement").ConfigureAwait(false);
            connection.Consume();
        }
    }

    /// <summary>
    /// SHM_DIRECT: the client copies into (push) or out of (pull) our KV pool itself. We pin the lease's blocks, tell it the
    /// pool file and the blocks' physical ids, and hold the pin until its END (or until the connection fails or times out:
    /// the pin never outlives the connection, so a killed client frees the blocks).
    /// </summary>
    private async Task ServeDirectAsync(KvConnection connection, System.Buffers.ReadOnlySequence<byte> payload)
    {
        var (handle, first, count, mode) = KvFrames.DecodeRequest(payload, "direct shared-memory request");
        connection.Consume();
        var shared = SharedPool ?? throw new KvProtocolException(KvErrorCode.SharedMemory, "this worker's KV pool is not in shared memory");
        var write = mode == 1;
        await ServeLeaseAsync(handle, first, count, write, () => ServePinnedAsync(connection, shared, handle, first, count, write)).ConfigureAwait(false);
    }

    private async Task ServePinnedAsync(KvConnection connection, ISharedKvBlockAccess shared, long handle, int first, int count, bool write)
    {
        var layout = _access.Layout;
        var blocks = new int[count];
        using (shared.Pin(handle, first, count, write, blocks))
        {
            connection.WriteFrame(KvFrameType.ShmPool, KvFrames.EncodeShmPool(shared.PoolFile!, ISharedKvBlockAccess.PoolBytes(layout, shared.PoolBlocks), shared.PoolBlocks, blocks));
            await connection.FlushAsync("the shared pool").ConfigureAwait(false);
            var (layers, total) = KvConnection.DecodeEnd(await connection.ExpectAsync(KvFrameType.End, "the end of a direct transfer").ConfigureAwait(false));
            connection.Consume();
            if (layers != (uint)layout.NumLayers || total != (long)count * layout.BytesPerBlock)
            {
                throw new KvProtocolException(KvErrorCode.Protocol, $"direct transfer ended with {layers} layers / {total} bytes, expected {layout.NumLayers} / {(long)count * layout.BytesPerBlock}");
            }
        }
        connection.WriteFrame(KvFrameType.EndAck, default);
        await connection.FlushAsync("the end-of-transfer acknowledgement").ConfigureAwait(false);
    }

    /// <summary>Stops listening, closes every connection (transfers in flight fail on the client side) and waits for their tasks.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        foreach (var connection in _connections.Keys)
        {
            connection.Abort();
        }
        await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
        await _evictMappings.DisposeAsync().ConfigureAwait(false);
        _mappings.Dispose();
        _stopping.Dispose();
    }
}
