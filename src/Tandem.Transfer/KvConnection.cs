using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// One TCP connection of the KV protocol, either end: a socket read and written through System.IO.Pipelines, frame
/// parsing, and a timeout on every wait. A connection runs one transfer at a time; after any failure it is closed.
/// </summary>
/// <remarks>
/// Timeouts: every read, acknowledgement wait and flush arms <see cref="_io"/> with <c>CancelAfter(timeout)</c> and disarms
/// it afterwards (the allocation-free form of <c>WaitAsync(timeout, ct)</c> per chunk). The caller's token is linked in
/// through a registration for the duration of one transfer, so cancellation and timeout are told apart.
/// </remarks>
internal sealed class KvConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly CancellationTokenSource _io = new();
    private readonly XxHash3 _hash = new();
    private SequencePosition _frameEnd;
    private bool _hasFrame;
    private CancellationToken _caller;
    private int _disposed;

    public KvConnection(Socket socket, KvTransferOptions options, string peer)
    {
        _socket = socket;
        _socket.NoDelay = true;
        Options = options;
        Peer = peer;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        _writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
    }

    public KvTransferOptions Options { get; }

    /// <summary>The other end, for messages.</summary>
    public string Peer { get; }

    /// <summary>True once a failure, timeout or cancellation has made the connection unusable.</summary>
    public bool IsBroken => Volatile.Read(ref _disposed) != 0 || _io.IsCancellationRequested;

    /// <summary>The layout both ends agreed on in the handshake.</summary>
    public KvLayout? Layout { get; set; }

    /// <summary>Client side: the server said its KV pool is a shared-memory file (direct copies possible on its host).</summary>
    public bool PeerSharesPool { get; set; }

    /// <summary>True when the peer has closed or reset the socket (checked before reusing a pooled connection).</summary>
    public bool LooksClosed()
    {
        try
        {
            return IsBroken || (_socket.Poll(0, SelectMode.SelectRead) && _socket.Available == 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    /// <summary>Links <paramref name="cancellationToken"/> to this connection's waits until the returned registration is disposed.</summary>
    public CancellationTokenRegistration BeginOperation(CancellationToken cancellationToken)
    {
        _caller = cancellationToken;
        return cancellationToken.UnsafeRegister(static state => ((KvConnection)state!).CancelIo(), this);
    }

    private void CancelIo()
    {
        try
        {
            _io.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    // ---- reading ----

    /// <summary>
    /// Waits for one whole frame. Between frames on an idle connection the wait is <see cref="KvTransferOptions.IdleTimeout"/>
    /// when <paramref name="idle"/>, otherwise (and always once part of a frame has arrived) <see cref="KvTransferOptions.ChunkTimeout"/>.
    /// The payload stays valid until <see cref="Consume"/>.
    /// </summary>
    public async ValueTask<(KvFrameType Type, ReadOnlySequence<byte> Payload)> ReadFrameAsync(string waitingFor, bool idle = false)
    {
        Consume();
        var timeout = idle ? Options.IdleTimeout : Options.ChunkTimeout;
        while (true)
        {
            var result = await ReadAsync(timeout, waitingFor).ConfigureAwait(false);
            var buffer = result.Buffer;
            bool complete;
            KvFrameType type;
            ReadOnlySequence<byte> payload;
            try
            {
                complete = KvFrames.TryParse(buffer, Options.MaxFrameBytes, out type, out payload);
            }
            catch
            {
                _reader.AdvanceTo(buffer.Start, buffer.End);
                throw;
            }
            if (complete)
            {
                _frameEnd = payload.End;
                _hasFrame = true;
                return (type, payload);
            }
            var empty = buffer.IsEmpty;
            _reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                if (empty)
                {
                    throw new KvConnectionClosedException($"{Peer} closed the KV connection while we waited for {waitingFor}");
                }
                throw new KvProtocolException(KvErrorCode.Protocol, $"{Peer} closed the KV connection in the middle of a frame (truncated frame) while we waited for {waitingFor}");
            }
            if (!empty)
            {
                timeout = Options.ChunkTimeout;
            }
        }
    }

    /// <summary>Releases the bytes of the last frame returned by <see cref="ReadFrameAsync"/>.</summary>
    public void Consume()
    {
        if (_hasFrame)
        {
            _hasFrame = false;
            _reader.AdvanceTo(_frameEnd);
        }
    }

    /// <summary>Reads the next frame and requires <paramref name="expected"/>; an error frame from the peer becomes a <see cref="KvTransferException"/>.</summary>
    public async ValueTask<ReadOnlySequence<byte>> ExpectAsync(KvFrameType expected, string waitingFor)
    {
        var (type, payload) = await ReadFrameAsync(waitingFor).ConfigureAwait(false);
        if (type == expected)
        {
            return payload;
        }
        throw Unexpected(type, payload, waitingFor);
    }

    /// <summary>The exception for a frame that is not the one expected (an error frame from the peer or a protocol violation).</summary>
    public KvTransferException Unexpected(KvFrameType type, ReadOnlySequence<byte> payload, string waitingFor)
    {
        if (type == KvFrameType.Error)
        {
            var (code, message) = KvFrames.DecodeError(payload);
            return new KvProtocolException(code, $"{Peer}: {message}");
        }
        return new KvProtocolException(KvErrorCode.Protocol, $"unexpected {type} frame from {Peer} while waiting for {waitingFor}");
    }

    /// <summary>Waits for the acknowledgement of chunk <paramref name="sequence"/>.</summary>
    public ValueTask ExpectAckAsync(uint sequence, string waitingFor) => ExpectCounterAsync(KvFrameType.ChunkAck, sequence, waitingFor);

    /// <summary>Waits for a frame of <paramref name="type"/> whose payload is the u32 <paramref name="expected"/> (CHUNK_ACK, SHM_LAYER).</summary>
    public async ValueTask ExpectCounterAsync(KvFrameType type, uint expected, string waitingFor)
    {
        var payload = await ExpectAsync(type, waitingFor).ConfigureAwait(false);
        if (payload.Length != 4 || ReadUInt32(payload) != expected)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"{Peer} sent {type} out of order (expected {expected})");
        }
        Consume();
    }

    private static uint ReadUInt32(ReadOnlySequence<byte> payload)
    {
        Span<byte> bytes = stackalloc byte[4];
        payload.Slice(0, 4).CopyTo(bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    private async ValueTask<ReadResult> ReadAsync(TimeSpan timeout, string waitingFor)
    {
        _io.CancelAfter(timeout);
        try
        {
            return await _reader.ReadAsync(_io.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not KvTransferException)
        {
            throw Failure(e, timeout, waitingFor);
        }
        finally
        {
            Disarm();
        }
    }

    // ---- writing ----

    public void WriteFrame(KvFrameType type, ReadOnlySpan<byte> payload)
    {
        var span = _writer.GetSpan(KvFrames.HeaderBytes + payload.Length);
        KvFrames.WriteHeader(span, type, payload.Length);
        payload.CopyTo(span[KvFrames.HeaderBytes..]);
        _writer.Advance(KvFrames.HeaderBytes + payload.Length);
    }

    /// <summary>WRITE_BEGIN or READ_BEGIN.</summary>
    public void WriteRequest(KvFrameType type, long handle, int first, int count, int extra)
    {
        Span<byte> payload = stackalloc byte[20];
        KvFrames.EncodeRequest(payload, handle, first, count, extra);
        WriteFrame(type, payload);
    }

    public void WriteAck(uint sequence) => WriteCounter(KvFrameType.ChunkAck, sequence);

    /// <summary>A frame whose payload is one u32 (CHUNK_ACK, SHM_LAYER).</summary>
    public void WriteCounter(KvFrameType type, uint value)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, value);
        WriteFrame(type, payload);
    }

    /// <summary>END: chunks u32, bytes i64.</summary>
    public void WriteEnd(uint chunks, long bytes)
    {
        Span<byte> payload = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, chunks);
        BinaryPrimitives.WriteInt64LittleEndian(payload[4..], bytes);
        WriteFrame(KvFrameType.End, payload);
    }

    public static (uint Chunks, long Bytes) DecodeEnd(ReadOnlySequence<byte> payload)
    {
        if (payload.Length != 12)
        {
            throw KvFrames.Malformed("end");
        }
        Span<byte> bytes = stackalloc byte[12];
        payload.CopyTo(bytes);
        return (BinaryPrimitives.ReadUInt32LittleEndian(bytes), BinaryPrimitives.ReadInt64LittleEndian(bytes[4..]));
    }

    /// <summary>
    /// Writes a CHUNK frame: header, then the K and V floats of the blocks, which <paramref name="access"/> reads straight
    /// into the pipe's buffer (no intermediate copy), and the XXH3 over (sequence, layer, first, count, K bytes, V bytes).
    /// </summary>
    public void WriteChunk(uint sequence, int layer, int first, int count, IKvBlockAccess access, long handle)
    {
        var dataBytes = count * access.Layout.FloatsPerBlockLayer * sizeof(float);
        var total = KvFrames.HeaderBytes + KvFrames.ChunkHeaderBytes + (2 * dataBytes);
        var span = _writer.GetSpan(total)[..total];
        KvFrames.WriteHeader(span, KvFrameType.Chunk, total - KvFrames.HeaderBytes);
        var chunk = span.Slice(KvFrames.HeaderBytes, KvFrames.ChunkHeaderBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(chunk, sequence);
        BinaryPrimitives.WriteInt32LittleEndian(chunk[4..], layer);
        BinaryPrimitives.WriteInt32LittleEndian(chunk[8..], first);
        BinaryPrimitives.WriteInt32LittleEndian(chunk[12..], count);
        var data = span[(KvFrames.HeaderBytes + KvFrames.ChunkHeaderBytes)..];
        var keyBytes = data[..dataBytes];
        var valueBytes = data[dataBytes..];
        access.Read(handle, layer, first, count, MemoryMarshal.Cast<byte, float>(keyBytes), MemoryMarshal.Cast<byte, float>(valueBytes));
        BinaryPrimitives.WriteUInt64LittleEndian(chunk[16..], Checksum(chunk[..KvFrames.ChunkCheckedHeaderBytes], keyBytes, valueBytes));
        _writer.Advance(total);
    }

    public ulong Checksum(ReadOnlySpan<byte> header, ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values)
    {
        _hash.Reset();
        _hash.Append(header);
        _hash.Append(keys);
        _hash.Append(values);
        return _hash.GetCurrentHashAsUInt64();
    }

    public async ValueTask FlushAsync(string what)
    {
        var timeout = Options.ChunkTimeout;
        _io.CancelAfter(timeout);
        try
        {
            var result = await _writer.FlushAsync(_io.Token).ConfigureAwait(false);
            if (result.IsCanceled || result.IsCompleted)
            {
                Abort();
                throw new KvTransferException($"connection to {Peer} lost while sending {what}");
            }
        }
        catch (Exception e) when (e is not KvTransferException)
        {
            throw Failure(e, timeout, "the peer to take " + what);
        }
        finally
        {
            Disarm();
        }
    }

    /// <summary>
    /// Sends an error frame as a best effort, half-closes, and discards what the peer still sends until it closes (at most
    /// one second), so that the peer reads the error instead of a reset; then closes.
    /// </summary>
    public async ValueTask SendErrorAndCloseAsync(KvErrorCode code, string message)
    {
        try
        {
            if (!IsBroken)
            {
                Consume();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                WriteFrame(KvFrameType.Error, KvFrames.EncodeError(code, message));
                await _writer.FlushAsync(cts.Token).ConfigureAwait(false);
                _socket.Shutdown(SocketShutdown.Send);
                while (true)
                {
                    var result = await _reader.ReadAsync(cts.Token).ConfigureAwait(false);
                    _reader.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted || result.IsCanceled)
                    {
                        break;
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
        }
        Abort();
    }

    private void Disarm()
    {
        try
        {
            _io.CancelAfter(Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private Exception Failure(Exception e, TimeSpan timeout, string waitingFor)
    {
        var cancelled = _io.IsCancellationRequested;
        Abort();
        if (e is OperationCanceledException or ObjectDisposedException || cancelled)
        {
            if (_caller.IsCancellationRequested)
            {
                return new OperationCanceledException("KV transfer cancelled", e, _caller);
            }
            if (cancelled && e is OperationCanceledException)
            {
                return new KvTransferException($"KV transfer with {Peer} timed out after {timeout.TotalMilliseconds:0} ms waiting for {waitingFor}", e);
            }
        }
        return new KvTransferException($"connection to {Peer} lost while waiting for {waitingFor}: {e.Message}", e);
    }

    /// <summary>Closes the socket at once; pending waits fail.</summary>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _socket.Close();
    }

    public async ValueTask DisposeAsync()
    {
        Abort();
        try
        {
            await _reader.CompleteAsync().ConfigureAwait(false);
            await _writer.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
        await _stream.DisposeAsync().ConfigureAwait(false);
        _io.Dispose();
    }
}
