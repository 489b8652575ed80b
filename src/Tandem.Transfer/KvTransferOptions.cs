using System.Buffers;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// Settings of the network KV transports and of <see cref="KvTransferServer"/>: an immutable snapshot, validated when a
/// transport or server is created.
/// </summary>
public sealed record KvTransferOptions
{
    public static KvTransferOptions Default { get; } = new();

    /// <summary>Largest chunk payload (K and V bytes of some blocks of one layer). A chunk holds at least one block.</summary>
    public int MaxChunkBytes { get; init; } = 1 << 20;

    /// <summary>Chunks a sender may have in flight before it waits for the receiver's acknowledgement (back-pressure).</summary>
    public int MaxOutstandingChunks { get; init; } = 4;

    /// <summary>Longest wait for one chunk, one acknowledgement or one flush; a transfer that stalls longer fails.</summary>
    public TimeSpan ChunkTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait to open a connection and finish the handshake.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the server keeps a connection that is between transfers (a pooled client connection).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Largest frame either side accepts; larger declared sizes are refused before anything is buffered.</summary>
    public int MaxFrameBytes { get; init; } = 64 << 20;

    /// <summary>Idle connections a client keeps per server address (and layout) for later transfers.</summary>
    public int MaxIdleConnectionsPerEndpoint { get; init; } = 8;

    /// <summary>Directory of the shared-memory segments (tmpfs); the server only opens segments inside it.</summary>
    public string SharedMemoryDirectory { get; init; } = "/dev/shm";

    /// <summary>Idle shared-memory segments a client keeps mapped per server address for later transfers (0 = a new segment per transfer).</summary>
    public int MaxIdleSegmentsPerEndpoint { get; init; } = 4;

    /// <summary>Shared-memory segments a server keeps mapped between transfers (least recently used dropped first).</summary>
    public int MaxMappedSegments { get; init; } = 64;

    /// <summary>
    /// Copy straight into or out of a peer's KV pool when it lives in shared memory (one copy); false forces the staging
    /// segment (two copies), kept for comparison in benchmarks.
    /// </summary>
    public bool DirectSharedMemory { get; init; } = true;

    /// <summary>Pool of the chunk buffers (tests count rentals through it).</summary>
    internal ArrayPool<float> FloatPool { get; init; } = ArrayPool<float>.Shared;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public KvTransferOptions Validate()
    {
        if (MaxChunkBytes < 1024)
        {
            throw new ArgumentException($"{nameof(MaxChunkBytes)} must be at least 1024, not {MaxChunkBytes}");
        }
        if (MaxFrameBytes < MaxChunkBytes + KvFrames.ChunkHeaderBytes)
        {
            throw new ArgumentException($"{nameof(MaxFrameBytes)} ({MaxFrameBytes}) must hold a chunk of {nameof(MaxChunkBytes)} ({MaxChunkBytes}) and its header");
        }
        if (MaxOutstandingChunks < 1)
        {
            throw new ArgumentException($"{nameof(MaxOutstandingChunks)} must be at least 1");
        }
        if (ChunkTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero || IdleTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("timeouts must be positive");
        }
        if (MaxIdleConnectionsPerEndpoint < 0)
        {
            throw new ArgumentException($"{nameof(MaxIdleConnectionsPerEndpoint)} must not be negative");
        }
        if (MaxIdleSegmentsPerEndpoint < 0 || MaxMappedSegments < 0)
        {
            throw new ArgumentException($"{nameof(MaxIdleSegmentsPerEndpoint)} and {nameof(MaxMappedSegments)} must not be negative");
        }
        ArgumentException.ThrowIfNullOrEmpty(SharedMemoryDirectory);
        ArgumentNullException.ThrowIfNull(FloatPool);
        return this;
    }

    /// <summary>Blocks per chunk for <paramref name="layout"/> under a chunk budget of <paramref name="maxChunkBytes"/> (at least one).</summary>
    internal static int BlocksPerChunk(KvLayout layout, int maxChunkBytes, int count)
    {
        var blockBytes = 2L * layout.FloatsPerBlockLayer * sizeof(float);
        var blocks = (int)Math.Max(1, maxChunkBytes / blockBytes);
        return Math.Max(1, Math.Min(blocks, count));
    }
}
