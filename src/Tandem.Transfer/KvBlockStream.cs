using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// The chunked data phase both ends share: the sender (client on push, server on pull) reads blocks layer by layer
/// straight into the connection's send buffer and sends CHUNK frames with at most <see cref="KvTransferOptions.MaxOutstandingChunks"/> unacknowledged,
/// then END; the receiver checks and writes each chunk, acknowledges it, and acknowledges END.
/// </summary>
internal static class KvBlockStream
{
    public static async Task SendAsync(KvConnection connection, IKvBlockAccess access, long handle, int first, int count, int maxChunkBytes, CancellationToken cancellationToken)
    {
        var layout = access.Layout;
        var perBlock = layout.FloatsPerBlockLayer;
        var blocksPerChunk = KvTransferOptions.BlocksPerChunk(layout, maxChunkBytes, count);
        var window = (uint)connection.Options.MaxOutstandingChunks;
        uint sent = 0;
        uint acknowledged = 0;
        long bytes = 0;
        for (var layer = 0; layer < layout.NumLayers; layer++)
        {
            for (var block = first; block < first + count; block += blocksPerChunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var blocks = Math.Min(blocksPerChunk, first + count - block);
                var floats = blocks * perBlock;
                // Read straight into the frame in the pipe's buffer, hashed there.
                connection.WriteChunk(sent, layer, block, blocks, access, handle);
                sent++;
                bytes += 2L * floats * sizeof(float);
                await connection.FlushAsync("a KV chunk").ConfigureAwait(false);
                while (sent - acknowledged >= window)
                {
                    await connection.ExpectAckAsync(acknowledged, "a chunk acknowledgement").ConfigureAwait(false);
                    acknowledged++;
                }
            }
        }
        while (acknowledged < sent)
        {
            await connection.ExpectAckAsync(acknowledged, "a chunk acknowledgement").ConfigureAwait(false);
            acknowledged++;
        }
        connection.WriteEnd(sent, bytes);
        await connection.FlushAsync("the end of the transfer").ConfigureAwait(false);
        await connection.ExpectAsync(KvFrameType.EndAck, "the end-of-transfer acknowledgement").ConfigureAwait(false);
        connection.Consume();
    }

    public static async Task ReceiveAsync(KvConnection connection, IKvBlockAccess access, long handle, int first, int count, CancellationToken cancellationToken)
    {
        var layout = access.Layout;
        var perBlock = layout.FloatsPerBlockLayer;
        var pool = connection.Options.FloatPool;
        float[]? keys = null;
        float[]? values = null;
        try
        {
            uint sequence = 0;
            long blockLayers = 0;
            long bytes = 0;
            while (true)
            {
                var (type, payload) = await connection.ReadFrameAsync("a KV chunk").ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                if (type == KvFrameType.Chunk)
                {
                    var blocks = Apply(connection, access, handle, first, count, sequence, payload, ref keys, ref values);
                    blockLayers += blocks;
                    bytes += 2L * blocks * perBlock * sizeof(float);
                    connection.Consume();
                    connection.WriteAck(sequence);
                    sequence++;
                    await connection.FlushAsync("a chunk acknowledgement").ConfigureAwait(false);
                }
                else if (type == KvFrameType.End)
                {
                    var (chunks, declared) = KvConnection.DecodeEnd(payload);
                    connection.Consume();
                    if (chunks != sequence || declared != bytes || blockLayers != (long)count * layout.NumLayers)
                    {
                        throw new KvProtocolException(KvErrorCode.Protocol,
                            $"incomplete KV transfer from {connection.Peer}: got {sequence} chunks / {bytes} bytes / {blockLayers} block-layers, sender reports {chunks} chunks / {declared} bytes, expected {(long)count * layout.NumLayers} block-layers");
                    }
                    connection.WriteFrame(KvFrameType.EndAck, default);
                    await connection.FlushAsync("the end-of-transfer acknowledgement").ConfigureAwait(false);
                    return;
                }
                else
                {
                    throw connection.Unexpected(type, payload, "a KV chunk");
                }
            }
        }
        finally
        {
            if (keys is not null)
            {
                pool.Return(keys);
            }
            if (values is not null)
            {
                pool.Return(values);
            }
        }
    }

    /// <summary>Validates one chunk, checks its checksum and writes it; returns its block count.</summary>
    private static int Apply(KvConnection connection, IKvBlockAccess access, long handle, int first, int count, uint expectedSequence, in ReadOnlySequence<byte> payload, ref float[]? keys, ref float[]? values)
    {
        var layout = access.Layout;
        if (payload.Length < KvFrames.ChunkHeaderBytes)
        {
            throw KvFrames.Malformed("chunk");
        }
        Span<byte> header = stackalloc byte[KvFrames.ChunkHeaderBytes];
        payload.Slice(0, KvFrames.ChunkHeaderBytes).CopyTo(header);
        var sequence = BinaryPrimitives.ReadUInt32LittleEndian(header);
        var layer = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        var block = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        var blocks = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        var checksum = BinaryPrimitives.ReadUInt64LittleEndian(header[16..]);
        var perBlock = layout.FloatsPerBlockLayer;
        if (sequence != expectedSequence || layer < 0 || layer >= layout.NumLayers || blocks <= 0 || block < first ||
            (long)block + blocks > (long)first + count ||
            payload.Length != KvFrames.ChunkHeaderBytes + 2L * blocks * perBlock * sizeof(float))
        {
            throw new KvProtocolException(KvErrorCode.Protocol,
                $"malformed KV chunk from {connection.Peer}: sequence {sequence} (expected {expectedSequence}), layer {layer}, blocks [{block}, {(long)block + blocks}) of [{first}, {first + count}), {payload.Length} bytes");
        }
        var floats = blocks * perBlock;
        var pool = connection.Options.FloatPool;
        if (keys is null || keys.Length < floats)
        {
            if (keys is not null)
            {
                pool.Return(keys);
                keys = null;
            }
            keys = pool.Rent(floats);
        }
        if (values is null || values.Length < floats)
        {
            if (values is not null)
            {
                pool.Return(values);
                values = null;
            }
            values = pool.Rent(floats);
        }
        var keyBytes = MemoryMarshal.AsBytes(keys.AsSpan(0, floats));
        var valueBytes = MemoryMarshal.AsBytes(values.AsSpan(0, floats));
        var data = payload.Slice(KvFrames.ChunkHeaderBytes);
        data.Slice(0, keyBytes.Length).CopyTo(keyBytes);
        data.Slice(keyBytes.Length).CopyTo(valueBytes);
        if (connection.Checksum(header[..KvFrames.ChunkCheckedHeaderBytes], keyBytes, valueBytes) != checksum)
        {
            throw new KvProtocolException(KvErrorCode.Checksum,
                $"KV chunk checksum mismatch from {connection.Peer} (layer {layer}, blocks [{block}, {block + blocks})): the data was corrupted in transit");
        }
        access.Write(handle, layer, block, blocks, keys.AsSpan(0, floats), values.AsSpan(0, floats));
        return blocks;
    }
}
