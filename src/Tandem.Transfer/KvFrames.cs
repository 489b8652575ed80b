using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>Frame types of the KV transfer protocol (docs/design/kv-transfer.md).</summary>
internal enum KvFrameType : byte
{
    Hello = 1,
    HelloOk = 2,
    Error = 3,
    WriteBegin = 16,
    ReadBegin = 17,
    Ready = 18,
    Chunk = 19,
    ChunkAck = 20,
    End = 21,
    EndAck = 22,
    ShmWrite = 32,
    ShmRead = 33,
    ShmLayer = 34,
    ShmDirect = 35,
    ShmPool = 36,
}

/// <summary>Codes carried by an error frame.</summary>
internal enum KvErrorCode : ushort
{
    Protocol = 1,
    Version = 2,
    LayoutMismatch = 3,
    Refused = 4,
    Checksum = 5,
    SharedMemory = 6,
    Internal = 7,
}

/// <summary>A transfer failure with the code an error frame carries; the connection is closed after it.</summary>
internal class KvProtocolException(KvErrorCode code, string message, Exception? inner = null) : KvTransferException(message, inner)
{
    public KvErrorCode Code { get; } = code;
}

/// <summary>The peer closed the connection at a frame boundary (the normal end of a pooled connection).</summary>
internal sealed class KvConnectionClosedException(string message) : KvTransferException(message);

/// <summary>
/// Byte layout of the frames. Every frame: magic <c>0x4B54</c> (u16), type (u8), flags (u8, 0), payload length (u32),
/// all little-endian, then the payload.
/// </summary>
internal static class KvFrames
{
    public const ushort Magic = 0x4B54;
    public const byte Version = 3;

    /// <summary>HELLO_OK flag: the server's KV pool is a shared-memory file a client on its host may copy into or out of (SHM_DIRECT).</summary>
    public const byte SharedPoolFlag = 1;
    public const int HeaderBytes = 8;

    /// <summary>Chunk payload header: sequence u32, layer i32, first block i32, block count i32, XXH3-64 checksum u64.</summary>
    public const int ChunkHeaderBytes = 24;

    /// <summary>Bytes of the chunk header that the checksum covers (sequence, layer, first, count).</summary>
    public const int ChunkCheckedHeaderBytes = 16;

    public const int MaxStringBytes = 1024;

    public static void WriteHeader(Span<byte> destination, KvFrameType type, int payloadLength)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, Magic);
        destination[2] = (byte)type;
        destination[3] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], payloadLength);
    }

    /// <summary>
    /// Finds one complete frame at the start of <paramref name="buffer"/>. False when more bytes are needed; throws a
    /// <see cref="KvProtocolException"/> for a bad magic, unknown type, non-zero flags or an oversized declared length.
    /// </summary>
    public static bool TryParse(in ReadOnlySequence<byte> buffer, int maxFrameBytes, out KvFrameType type, out ReadOnlySequence<byte> payload)
    {
        type = default;
        payload = default;
        if (buffer.Length < HeaderBytes)
        {
            return false;
        }
        Span<byte> header = stackalloc byte[HeaderBytes];
        buffer.Slice(0, HeaderBytes).CopyTo(header);
        var magic = BinaryPrimitives.ReadUInt16LittleEndian(header);
        if (magic != Magic)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"malformed KV frame: bad magic 0x{magic:X4}");
        }
        type = (KvFrameType)header[2];
        if (!Enum.IsDefined(type))
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"malformed KV frame: unknown frame type {header[2]}");
        }
        if (header[3] != 0)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"malformed KV frame: unknown flags 0x{header[3]:X2}");
        }
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (length > (uint)maxFrameBytes)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"malformed KV frame: declared payload of {length} bytes exceeds the limit of {maxFrameBytes}");
        }
        if (buffer.Length < HeaderBytes + length)
        {
            return false;
        }
        payload = buffer.Slice(HeaderBytes, length);
        return true;
    }

    public static byte[] EncodeHello(KvLayout layout)
    {
        var fingerprint = Encoding.UTF8.GetBytes(layout.ModelFingerprint);
        var dataType = Encoding.UTF8.GetBytes(layout.DataType);
        if (fingerprint.Length > MaxStringBytes || dataType.Length > MaxStringBytes)
        {
            throw new KvTransferException("KV layout names are too long for the transfer handshake");
        }
        var payload = new byte[1 + 2 + fingerprint.Length + 16 + 2 + dataType.Length];
        var span = payload.AsSpan();
        span[0] = Version;
        BinaryPrimitives.WriteUInt16LittleEndian(span[1..], (ushort)fingerprint.Length);
        fingerprint.CopyTo(span[3..]);
        var at = 3 + fingerprint.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], layout.NumLayers);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 4)..], layout.BlockSize);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 8)..], layout.NumKvHeads);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 12)..], layout.HeadDim);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 16)..], (ushort)dataType.Length);
        dataType.CopyTo(span[(at + 18)..]);
        return payload;
    }

    /// <summary>Reads a handshake: the sender's protocol version and layout.</summary>
    public static (byte Version, KvLayout? Layout) DecodeHello(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        if (!reader.TryRead(out var version))
        {
            throw Malformed("hello");
        }
        if (version != Version)
        {
            return (version, null);
        }
        var fingerprint = ReadString(ref reader, "hello");
        if (!reader.TryReadLittleEndian(out int layers) || !reader.TryReadLittleEndian(out int blockSize) ||
            !reader.TryReadLittleEndian(out int heads) || !reader.TryReadLittleEndian(out int headDim))
        {
            throw Malformed("hello");
        }
        var dataType = ReadString(ref reader, "hello");
        ExpectEnd(ref reader, "hello");
        if (layers <= 0 || blockSize <= 0 || heads <= 0 || headDim <= 0 || (long)blockSize * heads * headDim > int.MaxValue / 2)
        {
            throw new KvProtocolException(KvErrorCode.Protocol, $"malformed KV handshake: invalid layout dimensions {layers}×{blockSize}×{heads}×{headDim}");
        }
        return (version, new KvLayout(fingerprint, layers, blockSize, heads, headDim, dataType));
    }

    public static byte[] EncodeError(KvErrorCode code, string message)
    {
        var text = Encoding.UTF8.GetBytes(message.Length > 2000 ? message[..2000] : message);
        var payload = new byte[4 + text.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(payload, (ushort)code);
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(2), (ushort)text.Length);
        text.CopyTo(payload, 4);
        return payload;
    }

    public static (KvErrorCode Code, string Message) DecodeError(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        if (!reader.TryReadLittleEndian(out short code))
        {
            return (KvErrorCode.Protocol, "malformed error frame");
        }
        var message = reader.TryReadLittleEndian(out short length) && length >= 0 && reader.Remaining >= length
            ? Encoding.UTF8.GetString(reader.UnreadSequence.Slice(0, length))
            : "(no message)";
        return ((KvErrorCode)(ushort)code, message);
    }

    /// <summary>WRITE_BEGIN / READ_BEGIN / SHM_WRITE / SHM_READ: lease handle i64, first i32, count i32, then a u32 (READ: max chunk bytes) or a path (SHM).</summary>
    public static int EncodeRequest(Span<byte> destination, long handle, int first, int count, int maxChunkBytes)
    {
        BinaryPrimitives.WriteInt64LittleEndian(destination, handle);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], first);
        BinaryPrimitives.WriteInt32LittleEndian(destination[12..], count);
        BinaryPrimitives.WriteInt32LittleEndian(destination[16..], maxChunkBytes);
        return 20;
    }

    public static (long Handle, int First, int Count, int Extra) DecodeRequest(ReadOnlySequence<byte> payload, string what)
    {
        var reader = new SequenceReader<byte>(payload);
        if (!reader.TryReadLittleEndian(out long handle) || !reader.TryReadLittleEndian(out int first) ||
            !reader.TryReadLittleEndian(out int count) || !reader.TryReadLittleEndian(out int extra))
        {
            throw Malformed(what);
        }
        ExpectEnd(ref reader, what);
        return (handle, first, count, extra);
    }

    public static byte[] EncodeShmRequest(long handle, int first, int count, long segmentBytes, string path)
    {
        var text = Encoding.UTF8.GetBytes(path);
        var payload = new byte[8 + 4 + 4 + 8 + 2 + text.Length];
        var span = payload.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(span, handle);
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], first);
        BinaryPrimitives.WriteInt32LittleEndian(span[12..], count);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], segmentBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(span[24..], (ushort)text.Length);
        text.CopyTo(span[26..]);
        return payload;
    }

    public static (long Handle, int First, int Count, long SegmentBytes, string Path) DecodeShmRequest(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        if (!reader.TryReadLittleEndian(out long handle) || !reader.TryReadLittleEndian(out int first) ||
            !reader.TryReadLittleEndian(out int count) || !reader.TryReadLittleEndian(out long bytes))
        {
            throw Malformed("shared-memory request");
        }
        var path = ReadString(ref reader, "shared-memory request");
        ExpectEnd(ref reader, "shared-memory request");
        return (handle, first, count, bytes, path);
    }

    /// <summary>SHM_POOL: pool file path, pool bytes i64, pool blocks i32, block count i32, then the physical block ids (i32 each).</summary>
    public static byte[] EncodeShmPool(string path, long poolBytes, int poolBlocks, ReadOnlySpan<int> blocks)
    {
        var text = Encoding.UTF8.GetBytes(path);
        if (text.Length > MaxStringBytes)
        {
            throw new KvTransferException($"the KV pool path {path} is too long for the transfer protocol");
        }
        var payload = new byte[2 + text.Length + 8 + 4 + 4 + (4 * blocks.Length)];
        var span = payload.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)text.Length);
        text.CopyTo(span[2..]);
        var at = 2 + text.Length;
        BinaryPrimitives.WriteInt64LittleEndian(span[at..], poolBytes);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 8)..], poolBlocks);
        BinaryPrimitives.WriteInt32LittleEndian(span[(at + 12)..], blocks.Length);
        at += 16;
        foreach (var b in blocks)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], b);
            at += 4;
        }
        return payload;
    }

    /// <summary>Reads SHM_POOL, checking that every block id lies in the pool.</summary>
    public static (string Path, long PoolBytes, int PoolBlocks, int[] Blocks) DecodeShmPool(ReadOnlySequence<byte> payload)
    {
        var reader = new SequenceReader<byte>(payload);
        var path = ReadString(ref reader, "shared pool");
        if (!reader.TryReadLittleEndian(out long poolBytes) || !reader.TryReadLittleEndian(out int poolBlocks) ||
            !reader.TryReadLittleEndian(out int count) || poolBytes <= 0 || poolBlocks <= 0 || count < 0 || reader.Remaining != 4L * count)
        {
            throw Malformed("shared pool");
        }
        var blocks = new int[count];
        for (var i = 0; i < count; i++)
        {
            reader.TryReadLittleEndian(out blocks[i]);
            if ((uint)blocks[i] >= (uint)poolBlocks)
            {
                throw new KvProtocolException(KvErrorCode.Protocol, $"malformed KV shared pool frame: block {blocks[i]} outside a pool of {poolBlocks}");
            }
        }
        return (path, poolBytes, poolBlocks, blocks);
    }

    private static string ReadString(ref SequenceReader<byte> reader, string what)
    {
        if (!reader.TryReadLittleEndian(out short length) || length < 0 || length > MaxStringBytes || reader.Remaining < length)
        {
            throw Malformed(what);
        }
        var text = Encoding.UTF8.GetString(reader.UnreadSequence.Slice(0, length));
        reader.Advance(length);
        return text;
    }

    private static void ExpectEnd(ref SequenceReader<byte> reader, string what)
    {
        if (!reader.End)
        {
            throw Malformed(what);
        }
    }

    public static KvProtocolException Malformed(string what) => new(KvErrorCode.Protocol, $"malformed KV {what} frame");
}
