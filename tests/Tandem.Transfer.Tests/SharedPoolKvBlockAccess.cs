using System.Collections.Concurrent;
using Tandem.Abstractions;
using Tandem.Engine.Inference;

namespace Tandem.Transfer.Tests;

/// <summary>
/// KV memory laid out as the engine's pool (per layer: keys of all blocks, then values) in a shared-memory file, with
/// leases of given physical blocks: what a worker's KV looks like to a peer that copies into or out of it directly.
/// </summary>
internal sealed unsafe class SharedPoolKvBlockAccess : ISharedKvBlockAccess, IDisposable
{
    private sealed record Lease(int[] Blocks, int Cached);

    private readonly KvSlab _slab;
    private readonly ConcurrentDictionary<long, Lease> _leases = new();
    private long _nextHandle = 500;
    private int _pins;

    public SharedPoolKvBlockAccess(KvLayout layout, int poolBlocks, string directory)
    {
        Layout = layout;
        PoolBlocks = poolBlocks;
        _slab = KvSlab.TryShared(directory, ISharedKvBlockAccess.PoolBytes(layout, poolBlocks), out var failure)
            ?? throw new InvalidOperationException(failure);
    }

    public KvLayout Layout { get; }

    public int PoolBlocks { get; }

    public string? PoolFile => _slab.SharedFile;

    /// <summary>Pins held now by peers copying directly.</summary>
    public int Pins => Volatile.Read(ref _pins);

    /// <summary>A lease over <paramref name="blocks"/> (physical ids), filled with random floats when <paramref name="random"/> is given.</summary>
    public long AddLease(int[] blocks, int cached = 0, Random? random = null)
    {
        if (random is not null)
        {
            foreach (var b in blocks)
            {
                for (var layer = 0; layer < Layout.NumLayers; layer++)
                {
                    foreach (var side in (int[])[0, 1])
                    {
                        var span = Block(layer, side, b);
                        for (var i = 0; i < span.Length; i++)
                        {
                            span[i] = random.NextSingle() * 2 - 1;
                        }
                    }
                }
            }
        }
        var handle = Interlocked.Increment(ref _nextHandle);
        _leases[handle] = new Lease(blocks, cached);
        return handle;
    }

    public Span<float> Block(int layer, int side, int block) =>
        new(_slab.Start + ISharedKvBlockAccess.PoolByteOffset(Layout, PoolBlocks, layer, side, block), Layout.FloatsPerBlockLayer);

    public KvLeaseInfo Describe(long handle) =>
        _leases.TryGetValue(handle, out var lease) ? new KvLeaseInfo(lease.Blocks.Length, lease.Cached, lease.Blocks.Length * Layout.BlockSize) : throw new KvTransferException($"unknown KV lease {handle}");

    public void Read(long handle, int layer, int first, int count, Span<float> keys, Span<float> values)
    {
        var lease = _leases[handle];
        var per = Layout.FloatsPerBlockLayer;
        for (var i = 0; i < count; i++)
        {
            Block(layer, 0, lease.Blocks[first + i]).CopyTo(keys.Slice(i * per, per));
            Block(layer, 1, lease.Blocks[first + i]).CopyTo(values.Slice(i * per, per));
        }
    }

    public void Write(long handle, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        var lease = _leases[handle];
        var per = Layout.FloatsPerBlockLayer;
        for (var i = 0; i < count; i++)
        {
            keys.Slice(i * per, per).CopyTo(Block(layer, 0, lease.Blocks[first + i]));
            values.Slice(i * per, per).CopyTo(Block(layer, 1, lease.Blocks[first + i]));
        }
    }

    public IDisposable Pin(long handle, int first, int count, bool write, Span<int> physicalBlocks)
    {
        var lease = _leases.TryGetValue(handle, out var l) ? l : throw new KvTransferException($"unknown KV lease {handle}");
        if (write && first < lease.Cached)
        {
            throw new KvTransferException($"block {first} of lease {handle} is a cached (shared) block and cannot be written");
        }
        lease.Blocks.AsSpan(first, count).CopyTo(physicalBlocks);
        Interlocked.Increment(ref _pins);
        return new Unpin(this);
    }

    public void Dispose() => _slab.Dispose();

    private sealed class Unpin(SharedPoolKvBlockAccess owner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                Interlocked.Decrement(ref owner._pins);
            }
        }
    }
}
