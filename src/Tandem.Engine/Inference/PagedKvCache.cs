namespace Tandem.Engine.Inference;

/// <summary>
/// Key/value memory for attention, cut into fixed blocks of <see cref="BlockSize"/> tokens that sequences
/// borrow through block tables (paged attention). One native slab holds everything: for each layer, keys of
/// all blocks then values of all blocks, each block laid out [block_size, n_kv_heads, head_dim] in f32 —
/// the same layout the KV transfer contract uses, so a block can be copied out or in with one memcpy per
/// layer and side. The slab can live in a shared-memory file (<see cref="KvSlab"/>) that a peer process on the same host
/// maps to copy blocks in or out directly.
/// </summary>
public sealed unsafe class PagedKvCache : IDisposable
{
    private readonly Stack<int> _free;
    private readonly KvSlab _memory;
    private float* _slab;

    /// <summary>
    /// A cache of <paramref name="numBlocks"/> blocks. With <paramref name="sharedMemoryDirectory"/> the slab is a file
    /// in that directory (tmpfs) that peers on the host can map; if that fails the cache uses private memory and
    /// <see cref="SharedMemoryFailure"/> says why.
    /// </summary>
    public PagedKvCache(int numLayers, int numKvHeads, int headDim, int blockSize, int numBlocks, string? sharedMemoryDirectory = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numLayers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numKvHeads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        NumLayers = numLayers;
        KvDim = numKvHeads * headDim;
        BlockSize = blockSize;
        NumBlocks = numBlocks;
        FloatsPerBlock = (long)blockSize * KvDim;
        var total = checked(FloatsPerBlock * numBlocks * numLayers * 2);
        var bytes = total * sizeof(float);
        string? failure = null;
        _memory = (sharedMemoryDirectory is null ? null : KvSlab.TryShared(sharedMemoryDirectory, bytes, out failure)) ?? KvSlab.Private(bytes);
        SharedMemoryFailure = failure;
        _slab = (float*)_memory.Start;
        _free = new Stack<int>(numBlocks);
        for (var b = numBlocks - 1; b >= 0; b--)
        {
            _free.Push(b);
        }
    }

    public int NumLayers { get; }
    public int KvDim { get; }
    public int BlockSize { get; }
    public int NumBlocks { get; }

    /// <summary>Floats in one block of one layer and one side (K or V).</summary>
    public long FloatsPerBlock { get; }

    /// <summary>Bytes one block occupies across all layers, keys and values.</summary>
    public long BytesPerBlock => FloatsPerBlock * sizeof(float) * NumLayers * 2;

    public int FreeBlockCount => _free.Count;

    /// <summary>The shared-memory file holding the slab (see <see cref="KvSlab"/>); null when the slab is private memory.</summary>
    public string? SharedFile => _memory.SharedFile;

    /// <summary>Why a requested shared-memory slab could not be made (the cache then uses private memory); null otherwise.</summary>
    public string? SharedMemoryFailure { get; }

    /// <summary>Bytes needed to hold <paramref name="numBlocks"/> blocks for a model.</summary>
    public static long BytesFor(int numLayers, int kvDim, int blockSize, int numBlocks) =>
        (long)numLayers * 2 * kvDim * blockSize * numBlocks * sizeof(float);

    public bool TryAllocate(out int block) => _free.TryPop(out block);

    public void Free(int block)
    {
        if ((uint)block >= (uint)NumBlocks)
        {
            throw new ArgumentOutOfRangeException(nameof(block), block, $"the cache has {NumBlocks} blocks");
        }
        _free.Push(block);
    }

    /// <summary>Start of the keys of token slot 0 in <paramref name="block"/> for <paramref name="layer"/>: [block_size, kv_dim].</summary>
    public float* Keys(int layer, int block) => Base(layer, block, 0);

    /// <summary>Start of the values of token slot 0 in <paramref name="block"/> for <paramref name="layer"/>: [block_size, kv_dim].</summary>
    public float* Values(int layer, int block) => Base(layer, block, 1);

    private float* Base(int layer, int block, int side)
    {
        ObjectDisposedException.ThrowIf(_slab == null, this);
        return _slab + ((((long)layer * 2) + side) * NumBlocks * FloatsPerBlock) + (block * FloatsPerBlock);
    }

    public void Dispose()
    {
        if (_slab != null)
        {
            _memory.Dispose();
            _slab = null;
        }
    }
}

/// <summary>A sequence's view of the cache: its block table and how many token positions are filled.</summary>
public sealed class KvSequence
{
    private readonly List<int> _blocks = [];

    /// <summary>Physical block ids in logical order: token position p lives in block Blocks[p / block_size], slot p % block_size.</summary>
    public IReadOnlyList<int> Blocks => _blocks;

    /// <summary>Number of positions whose keys and values are in the cache.</summary>
    public int Length { get; internal set; }

    /// <summary>Makes room for <paramref name="length"/> positions; false (with nothing allocated) when the cache runs out of blocks.</summary>
    public bool TryReserve(PagedKvCache cache, int length)
    {
        var needed = ((length + cache.BlockSize - 1) / cache.BlockSize) - _blocks.Count;
        if (needed <= 0)
        {
            return true;
        }
        if (needed > cache.FreeBlockCount)
        {
            return false;
        }
        for (var i = 0; i < needed; i++)
        {
            cache.TryAllocate(out var b);
            _blocks.Add(b);
        }
        return true;
    }

    /// <summary>Appends a block the caller allocated (a block manager that owns allocation, e.g. with prefix sharing).</summary>
    public void AddBlock(int block)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(block);
        _blocks.Add(block);
    }

    /// <summary>Declares how many positions hold valid keys and values (e.g. after reusing cached or imported blocks).</summary>
    public void SetLength(int length, int blockSize)
    {
        if (length < 0 || length > _blocks.Count * blockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"the sequence has room for {_blocks.Count * blockSize} positions");
        }
        Length = length;
    }

    /// <summary>Forgets the block table without returning blocks to any cache (their owner frees them).</summary>
    public void Clear()
    {
        _blocks.Clear();
        Length = 0;
    }

    /// <summary>Returns every block to the cache and empties the sequence.</summary>
    public void Release(PagedKvCache cache)
    {
        foreach (var b in _blocks)
        {
            cache.Free(b);
        }
        _blocks.Clear();
        Length = 0;
    }
}
