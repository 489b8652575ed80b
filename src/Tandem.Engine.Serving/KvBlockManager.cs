using System.Threading.Channels;
using Tandem.Abstractions;
using Tandem.Engine.Inference;

namespace Tandem.Engine.Serving;

/// <summary>
/// Owns the KV block pool: reference counts, per-sequence block tables (<see cref="KvSequence"/>), the prefix cache
/// (full blocks registered under their chained sequence hash, see <see cref="BlockHashing"/>) and its KV events.
/// <para>A block is in exactly one state: <b>free</b> (no owner, no hash), <b>in use</b> (reference count ≥ 1, maybe
/// cached and then shareable), or <b>evictable</b> (count 0 but cached: reusable by a later prefix hit until it is
/// evicted, least recently released first). Allocation takes free blocks first, then evicts.</para>
/// <para>Every <c>stored</c>/<c>removed</c>/<c>cleared</c> change of the cached set is published, in order, on
/// <see cref="ReadEventsAsync"/>; replaying them reproduces <see cref="Snapshot"/>. Thread-safe (one lock; the engine
/// loop and KV-transfer callers share it; no call holds it for longer than bookkeeping).</para>
/// </summary>
public sealed class KvBlockManager
{
    private const int None = -1;
    private readonly Lock _gate = new();
    private readonly int[] _refs;
    private readonly bool[] _cached;
    private readonly ulong[] _hash;
    private readonly ulong[] _tokensHash;
    private readonly ulong?[] _parent;
    private readonly Dictionary<ulong, int> _byHash = [];
    private readonly Stack<int> _free;

    // Evictable blocks as an intrusive doubly-linked LRU list (head = evicted next).
    private readonly int[] _prev;
    private readonly int[] _next;
    private int _lruHead = None;
    private int _lruTail = None;
    private int _evictable;

    private readonly Channel<KvEvent> _events;
    private long _lastEventId;
    private readonly List<KvStoredBlock> _storedRun = [];
    private readonly List<ulong> _removedRun = [];

    public KvBlockManager(int numBlocks, int blockSize, bool enablePrefixCaching = true, int eventCapacity = 65536)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(eventCapacity, 1);
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        PrefixCachingEnabled = enablePrefixCaching;
        _refs = new int[numBlocks];
        _cached = new bool[numBlocks];
        _hash = new ulong[numBlocks];
        _tokensHash = new ulong[numBlocks];
        _parent = new ulong?[numBlocks];
        _prev = new int[numBlocks];
        _next = new int[numBlocks];
        _free = new Stack<int>(numBlocks);
        for (var b = numBlocks - 1; b >= 0; b--)
        {
            _free.Push(b);
        }
        // Events nobody reads must not grow without bound: the oldest are dropped and the reader sees a gap in ids.
        _events = Channel.CreateBounded<KvEvent>(new BoundedChannelOptions(eventCapacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
            SingleWriter = false,
        });
    }

    public int NumBlocks { get; }
    public int BlockSize { get; }
    public bool PrefixCachingEnabled { get; }

    /// <summary>Blocks that can be allocated now: free plus evictable.</summary>
    public int AvailableBlocks
    {
        get
        {
            lock (_gate)
            {
                return _free.Count + _evictable;
            }
        }
    }

    /// <summary>Blocks with a reference count ≥ 1.</summary>
    public int UsedBlocks
    {
        get
        {
            lock (_gate)
            {
                return NumBlocks - _free.Count - _evictable;
            }
        }
    }

    /// <summary>Unreferenced blocks kept for prefix reuse.</summary>
    public int EvictableBlocks
    {
        get
        {
            lock (_gate)
            {
                return _evictable;
            }
        }
    }

    /// <summary>Blocks registered in the prefix cache (in use or evictable).</summary>
    public int CachedBlocks
    {
        get
        {
            lock (_gate)
            {
                return _byHash.Count;
            }
        }
    }

    /// <summary>Blocks needed to hold <paramref name="tokens"/> positions.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>How many leading blocks of <paramref name="sequenceHashes"/> are cached now (no side effects).</summary>
    public int CountCachedPrefix(IReadOnlyList<ulong> sequenceHashes)
    {
        ArgumentNullException.ThrowIfNull(sequenceHashes);
        lock (_gate)
        {
            return MatchLocked(sequenceHashes);
        }
    }

    /// <summary>
    /// Gives an empty <paramref name="sequence"/> its longest cached prefix among the first <paramref name="maxMatchBlocks"/> of <paramref name="sequenceHashes"/> (shared,
    /// reference counted) plus fresh blocks so that it can hold min(<paramref name="totalTokens"/>, cached tokens +
    /// <paramref name="newTokens"/>) positions, keeping at least <paramref name="keepFree"/> blocks available afterwards.
    /// All or nothing: on false nothing changed. Returns the number of cached blocks taken in <paramref name="cachedBlocks"/>.
    /// </summary>
    public bool TryAllocate(KvSequence sequence, IReadOnlyList<ulong> sequenceHashes, int maxMatchBlocks, int totalTokens, int newTokens, int keepFree, out int cachedBlocks)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        ArgumentNullException.ThrowIfNull(sequenceHashes);
        if (sequence.Blocks.Count != 0)
        {
            throw new InvalidOperationException("the sequence already holds blocks");
        }
        lock (_gate)
        {
            var matched = PrefixCachingEnabled ? Math.Min(MatchLocked(sequenceHashes), maxMatchBlocks) : 0;
            var tokens = Math.Min(totalTokens, (matched * BlockSize) + newTokens);
            var fresh = Math.Max(0, BlocksFor(tokens) - matched);
            var reclaimed = 0; // matched blocks that sit in the LRU list stop being available once taken
            for (var i = 0; i < matched; i++)
            {
                reclaimed += _refs[_byHash[sequenceHashes[i]]] == 0 ? 1 : 0;
            }
            if (_free.Count + _evictable - reclaimed - fresh < keepFree)
            {
                cachedBlocks = 0;
                return false;
            }
            for (var i = 0; i < matched; i++)
            {
                var b = _byHash[sequenceHashes[i]];
                Retain(b);
                sequence.AddBlock(b);
            }
            for (var i = 0; i < fresh; i++)
            {
                sequence.AddBlock(TakeLocked());
            }
            FlushRemovedLocked();
            cachedBlocks = matched;
            return true;
        }
    }

    /// <summary>Adds fresh blocks so that <paramref name="sequence"/> can hold <paramref name="tokens"/> positions; all or nothing.</summary>
    public bool TryGrow(KvSequence sequence, int tokens)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        lock (_gate)
        {
            var needed = BlocksFor(tokens) - sequence.Blocks.Count;
            if (needed <= 0)
            {
                return true;
            }
            if (needed > _free.Count + _evictable)
            {
                return false;
            }
            for (var i = 0; i < needed; i++)
            {
                sequence.AddBlock(TakeLocked());
            }
            FlushRemovedLocked();
            return true;
        }
    }

    /// <summary>Allocates <paramref name="count"/> fresh blocks (reference count 1) for a caller that fills them itself; null if not enough are available.</summary>
    public int[]? TryAllocateBlocks(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        lock (_gate)
        {
            if (count > _free.Count + _evictable)
            {
                return null;
            }
            var blocks = new int[count];
            for (var i = 0; i < count; i++)
            {
                blocks[i] = TakeLocked();
            }
            FlushRemovedLocked();
            return blocks;
        }
    }

    /// <summary>
    /// Registers the blocks [<paramref name="fromBlock"/>, <paramref name="toBlock"/>) of <paramref name="blocks"/>, whose KV is now computed, under their
    /// sequence hashes, publishing one <c>stored</c> event per run of newly cached blocks. A block whose hash another block
    /// already holds stays uncached (its twin serves future hits).
    /// </summary>
    public void Commit(IReadOnlyList<int> blocks, IReadOnlyList<ulong> sequenceHashes, IReadOnlyList<ulong> tokensHashes, int fromBlock, int toBlock)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(sequenceHashes);
        ArgumentNullException.ThrowIfNull(tokensHashes);
        if (!PrefixCachingEnabled)
        {
            return;
        }
        if (toBlock > blocks.Count || toBlock > sequenceHashes.Count || toBlock > tokensHashes.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(toBlock), toBlock, "beyond the blocks or hashes given");
        }
        var count = toBlock;
        lock (_gate)
        {
            ulong? runParent = null;
            for (var i = fromBlock; i < count; i++)
            {
                var b = blocks[i];
                var hash = sequenceHashes[i];
                ulong? parent = i == 0 ? null : sequenceHashes[i - 1];
                if (_cached[b] || _byHash.ContainsKey(hash))
                {
                    FlushStoredLocked(runParent);
                    continue;
                }
                if (_storedRun.Count == 0)
                {
                    runParent = parent;
                }
                _cached[b] = true;
                _hash[b] = hash;
                _tokensHash[b] = tokensHashes[i];
                _parent[b] = parent;
                _byHash.Add(hash, b);
                _storedRun.Add(new KvStoredBlock(hash, tokensHashes[i]));
            }
            FlushStoredLocked(runParent);
        }
    }

    /// <summary>Drops one reference to each block of <paramref name="sequence"/> and empties it. Cached blocks become evictable (the sequence's first blocks last), others free.</summary>
    public void Free(KvSequence sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        lock (_gate)
        {
            ReleaseLocked(sequence.Blocks);
        }
        sequence.Clear();
    }

    /// <summary>Drops one reference to each of <paramref name="blocks"/>.</summary>
    public void Release(IReadOnlyList<int> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        lock (_gate)
        {
            ReleaseLocked(blocks);
        }
    }

    /// <summary>Adds a reference to each of <paramref name="blocks"/> (which must be in use).</summary>
    public void Share(IReadOnlyList<int> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        lock (_gate)
        {
            foreach (var b in blocks)
            {
                if (_refs[b] < 1)
                {
                    throw new InvalidOperationException($"block {b} is not in use");
                }
            }
            foreach (var b in blocks)
            {
                _refs[b]++;
            }
        }
    }

    /// <summary>Whether every one of <paramref name="blocks"/> is held by exactly one owner and not shared through the prefix cache (safe to overwrite).</summary>
    public bool IsExclusive(IReadOnlyList<int> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        lock (_gate)
        {
            foreach (var b in blocks)
            {
                if ((uint)b >= (uint)NumBlocks || _refs[b] != 1 || _cached[b])
                {
                    return false;
                }
            }
            return true;
        }
    }

    /// <summary>Forgets every cached prefix (blocks in use keep their contents but are no longer shareable) and publishes <c>cleared</c>.</summary>
    public void ResetPrefixCache()
    {
        lock (_gate)
        {
            foreach (var b in _byHash.Values)
            {
                _cached[b] = false;
                if (_refs[b] == 0)
                {
                    UnlinkLocked(b);
                    _free.Push(b);
                }
            }
            _byHash.Clear();
            Publish(new KvCacheCleared(++_lastEventId));
        }
    }

    /// <summary>The cached set and the id of the last event it reflects (for a consumer that missed events).</summary>
    public KvCacheSnapshot Snapshot()
    {
        lock (_gate)
        {
            var blocks = new List<KvSnapshotBlock>(_byHash.Count);
            foreach (var b in _byHash.Values)
            {
                blocks.Add(new KvSnapshotBlock(_hash[b], _parent[b], _tokensHash[b]));
            }
            return new KvCacheSnapshot(_lastEventId, BlockSize, blocks);
        }
    }

    /// <summary>The KV events in order. One reader at a time; events published while no one reads are kept up to the buffer capacity (oldest dropped).</summary>
    public IAsyncEnumerable<KvEvent> ReadEventsAsync(CancellationToken cancellationToken = default) =>
        _events.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Takes events already published without waiting (tests, polling publishers).</summary>
    public bool TryReadEvent(out KvEvent? kvEvent)
    {
        var ok = _events.Reader.TryRead(out var e);
        kvEvent = e;
        return ok;
    }

    private int MatchLocked(IReadOnlyList<ulong> sequenceHashes)
    {
        var n = 0;
        while (n < sequenceHashes.Count && _byHash.ContainsKey(sequenceHashes[n]))
        {
            n++;
        }
        return n;
    }

    private void Retain(int b)
    {
        if (_refs[b]++ == 0 && _cached[b])
        {
            UnlinkLocked(b);
        }
    }

    private int TakeLocked()
    {
        int b;
        if (_free.Count > 0)
        {
            b = _free.Pop();
        }
        else
        {
            b = _lruHead;
            if (b == None)
            {
                throw new InvalidOperationException("no KV block available");
            }
            UnlinkLocked(b);
            _byHash.Remove(_hash[b]);
            _cached[b] = false;
            _removedRun.Add(_hash[b]);
        }
        _refs[b] = 1;
        return b;
    }

    private void ReleaseLocked(IReadOnlyList<int> blocks)
    {
        // Last block first, so a sequence's leading blocks (the ones other prompts share) are evicted last.
        for (var i = blocks.Count - 1; i >= 0; i--)
        {
            var b = blocks[i];
            if (_refs[b] <= 0)
            {
                throw new InvalidOperationException($"block {b} released more often than allocated");
            }
            if (--_refs[b] > 0)
            {
                continue;
            }
            if (_cached[b])
            {
                LinkTailLocked(b);
            }
            else
            {
                _free.Push(b);
            }
        }
    }

    private void LinkTailLocked(int b)
    {
        _prev[b] = _lruTail;
        _next[b] = None;
        if (_lruTail == None)
        {
            _lruHead = b;
        }
        else
        {
            _next[_lruTail] = b;
        }
        _lruTail = b;
        _evictable++;
    }

    private void UnlinkLocked(int b)
    {
        if (_prev[b] == None)
        {
            _lruHead = _next[b];
        }
        else
        {
            _next[_prev[b]] = _next[b];
        }
        if (_next[b] == None)
        {
            _lruTail = _prev[b];
        }
        else
        {
            _prev[_next[b]] = _prev[b];
        }
        _evictable--;
    }

    private void FlushStoredLocked(ulong? parent)
    {
        if (_storedRun.Count > 0)
        {
            Publish(new KvBlocksStored(++_lastEventId, parent, [.. _storedRun]));
            _storedRun.Clear();
        }
    }

    private void FlushRemovedLocked()
    {
        if (_removedRun.Count > 0)
        {
            Publish(new KvBlocksRemoved(++_lastEventId, [.. _removedRun]));
            _removedRun.Clear();
        }
    }

    private void Publish(KvEvent e) => _events.Writer.TryWrite(e);
}
