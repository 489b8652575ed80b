namespace Tandem.Abstractions;

/// <summary>
/// The shape of a worker's KV blocks (blueprint §5): per layer, K and V of <c>[block_size, n_kv_heads, head_dim]</c>.
/// Two workers can exchange KV only when their layouts are equal; transports check this before any byte moves.
/// </summary>
public sealed record KvLayout(string ModelFingerprint, int NumLayers, int BlockSize, int NumKvHeads, int HeadDim, string DataType = "f32")
{
    /// <summary>Floats of one block for one layer and one side (K or V).</summary>
    public int FloatsPerBlockLayer => BlockSize * NumKvHeads * HeadDim;

    /// <summary>Bytes of one block across all layers, K and V.</summary>
    public long BytesPerBlock => 2L * NumLayers * FloatsPerBlockLayer * sizeof(float);

    /// <summary>Null when equal, else a sentence saying what differs.</summary>
    public string? Mismatch(KvLayout other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return this == other ? null : $"KV layouts differ: this side {this}, other side {other}";
    }
}

/// <summary>What a KV lease holds: its blocks, the leading ones that are shared prefix-cache blocks (read-only), and tokens.</summary>
public readonly record struct KvLeaseInfo(int Blocks, int CachedBlocks, int Tokens);

/// <summary>
/// A worker's KV memory as transports see it: blocks addressed by a lease handle (blocks pinned for a transfer) and a
/// block index within the lease. Implemented by the worker over its engine.
/// </summary>
public interface IKvBlockAccess
{
    KvLayout Layout { get; }

    /// <summary>The lease behind <paramref name="handle"/>; throws <see cref="KvTransferException"/> when unknown, expired or released.</summary>
    KvLeaseInfo Describe(long handle);

    /// <summary>Copies one layer of blocks <c>[first, first+count)</c> out (each span holds count × FloatsPerBlockLayer floats).</summary>
    void Read(long handle, int layer, int first, int count, Span<float> keys, Span<float> values);

    /// <summary>Writes one layer of blocks <c>[first, first+count)</c>; cached (shared) blocks of the lease cannot be written.</summary>
    void Write(long handle, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values);

    /// <summary>
    /// A transfer server tells the owner that a transfer writing into <paramref name="handle"/> broke off (the sender
    /// died, timed out or sent garbage), so whoever waits for that KV can stop waiting.
    /// </summary>
    void WriteFailed(long handle, string reason)
    {
    }
}

/// <summary>
/// KV memory whose pool is a file in a shared-memory directory, so that a transport of a peer on the same host maps it
/// and copies blocks in or out directly (one copy, no staging segment). The pool holds, for each layer, the keys of all
/// <see cref="PoolBlocks"/> blocks then their values, each block <see cref="KvLayout.FloatsPerBlockLayer"/> floats:
/// see <see cref="PoolByteOffset"/>.
/// </summary>
public interface ISharedKvBlockAccess : IKvBlockAccess
{
    /// <summary>Name prefix of pool files in the shared-memory directory (the rest: <c>{pid}-{random}</c>).</summary>
    const string PoolFilePrefix = "tandem-kvpool-";

    /// <summary>Path of the pool file; null when the pool is private memory (then peers use a staging segment).</summary>
    string? PoolFile { get; }

    /// <summary>Blocks in the pool.</summary>
    int PoolBlocks { get; }

    /// <summary>
    /// Pins blocks <c>[first, first+count)</c> of the lease <paramref name="handle"/> for a peer's direct copy and writes
    /// their physical block ids into <paramref name="physicalBlocks"/>. Until the pin is disposed the lease cannot be
    /// withdrawn (withdrawal waits), so the blocks are not given to another sequence while the peer copies. With
    /// <paramref name="write"/> the range must not touch the lease's cached (shared) blocks.
    /// </summary>
    IDisposable Pin(long handle, int first, int count, bool write, Span<int> physicalBlocks);

    /// <summary>Byte offset in a pool of <paramref name="poolBlocks"/> blocks of the keys (side 0) or values (side 1) of a block for a layer.</summary>
    static long PoolByteOffset(KvLayout layout, int poolBlocks, int layer, int side, int block) =>
        ((((long)layer * 2) + side) * poolBlocks + block) * layout.FloatsPerBlockLayer * sizeof(float);

    /// <summary>Bytes of a pool of <paramref name="poolBlocks"/> blocks: K and V of every layer.</summary>
    static long PoolBytes(KvLayout layout, int poolBlocks) => 2L * layout.NumLayers * poolBlocks * layout.FloatsPerBlockLayer * sizeof(float);
}

/// <summary>
/// Moves KV blocks between workers. Addresses name the transport: <c>inproc://name</c>, <c>tcp://host:port</c>,
/// <c>shm://host:port</c>. Blocks keep their index: block i of the source lease goes to block i of the destination lease.
/// </summary>
public interface IKvTransport
{
    /// <summary>True when this transport handles <paramref name="address"/> (by its scheme).</summary>
    bool Supports(string address);

    /// <summary>Copies blocks <c>[first, first+count)</c> of a local lease into the lease <paramref name="destinationHandle"/> at <paramref name="destination"/>.</summary>
    Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default);

    /// <summary>Copies blocks <c>[first, first+count)</c> of the remote lease <paramref name="sourceHandle"/> into a local lease.</summary>
    Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default);
}

/// <summary>A KV transfer failed: layout mismatch, unknown lease, checksum, timeout or a lost connection.</summary>
public class KvTransferException(string message, Exception? inner = null) : Exception(message, inner);
