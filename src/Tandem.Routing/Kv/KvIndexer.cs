using System.Numerics;
using System.Runtime.InteropServices;
using Tandem.Abstractions;

namespace Tandem.Routing.Kv;

/// <summary>What applying one KV event did.</summary>
public enum KvApplyResult
{
    /// <summary>The event was the next one expected and is now reflected.</summary>
    Applied,

    /// <summary>The event id was at or below the last one applied (a duplicate or a replay after a snapshot); ignored.</summary>
    Stale,

    /// <summary>Events were missed: the worker's view is unreliable until <see cref="KvIndexer.ApplySnapshot"/> is called.</summary>
    Gap,
}

/// <summary>
/// The router's index of which worker holds which prefix-cached KV blocks, fed by the workers' KV events.
/// <para>Blocks are keyed by their chained sequence hash (<see cref="BlockHashing"/>). Because a sequence hash already
/// identifies the whole prefix before it, the prefix tree of blocks (a radix tree over the hash chains) collapses
/// into one hash table from sequence hash to the set of workers holding that block: the children of a node are
/// exactly the hashes chained from it, so walking a request's hashes in order and intersecting the worker sets is the
/// same walk down the tree. A worker's overlap is the number of leading request blocks it holds without a hole.</para>
/// <para>Memory: each distinct block costs one table entry (8-byte key, a 16-byte worker set — a 64-bit mask for the
/// first 64 workers, a reference to an overflow bitmap beyond — an 8-byte hash code/link, ≈ 36 bytes with the bucket),
/// plus, per worker holding it, one entry in that worker's own hash set (≈ 20 bytes), which makes removing a worker
/// or clearing its cache cost O(its blocks). One million blocks on one worker: ≈ 56 MB. With
/// <see cref="MaxBlocksPerWorker"/> set, a worker's oldest stored blocks are dropped from the index past the cap
/// (the router then underestimates that worker's overlap, never overestimates it).</para>
/// <para>Thread-safe: one lock; lookups take O(request blocks) table probes.</para>
/// </summary>
public sealed class KvIndexer
{
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, WorkerSet> _blocks = [];
    private readonly Dictionary<string, int> _workerIndex = new(StringComparer.Ordinal);
    private readonly List<WorkerState?> _workers = [];
    private readonly Stack<int> _freeIndices = new();

    /// <param name="maxBlocksPerWorker">Blocks indexed per worker at most (0 = unbounded); past it the oldest stored are forgotten.</param>
    public KvIndexer(int maxBlocksPerWorker = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBlocksPerWorker);
        MaxBlocksPerWorker = maxBlocksPerWorker;
    }

    public int MaxBlocksPerWorker { get; }

    /// <summary>Distinct blocks indexed (over all workers).</summary>
    public int BlockCount
    {
        get
        {
            lock (_gate)
            {
                return _blocks.Count;
            }
        }
    }

    /// <summary>Workers with an index entry (they sent events or a snapshot and were not removed).</summary>
    public IReadOnlyList<string> Workers
    {
        get
        {
            lock (_gate)
            {
                return [.. _workerIndex.Keys];
            }
        }
    }

    /// <summary>Blocks indexed for <paramref name="workerId"/>.</summary>
    public int WorkerBlockCount(string workerId)
    {
        lock (_gate)
        {
            return _workerIndex.TryGetValue(workerId, out var i) ? _workers[i]!.Blocks.Count : 0;
        }
    }

    /// <summary>The id of the last event reflected for <paramref name="workerId"/> (0 when none).</summary>
    public long LastEventId(string workerId)
    {
        lock (_gate)
        {
            return _workerIndex.TryGetValue(workerId, out var i) ? _workers[i]!.LastEventId : 0;
        }
    }

    /// <summary>True while the worker missed events and waits for a snapshot.</summary>
    public bool NeedsResync(string workerId)
    {
        lock (_gate)
        {
            return _workerIndex.TryGetValue(workerId, out var i) && _workers[i]!.NeedsResync;
        }
    }

    /// <summary>
    /// Applies one event of <paramref name="workerId"/>. Event ids must follow each other by one (the first event of an
    /// unknown worker must be 1); otherwise the result is <see cref="KvApplyResult.Gap"/>, the worker's entries are
    /// kept as they are (an approximation) and later events are refused with <see cref="KvApplyResult.Gap"/> until a
    /// snapshot arrives.
    /// </summary>
    public KvApplyResult Apply(string workerId, KvEvent kvEvent)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        ArgumentNullException.ThrowIfNull(kvEvent);
        lock (_gate)
        {
            var (index, w) = GetOrAddLocked(workerId);
            if (w.NeedsResync)
            {
                return KvApplyResult.Gap;
            }
            if (kvEvent.EventId <= w.LastEventId)
            {
                return KvApplyResult.Stale;
            }
            if (kvEvent.EventId != w.LastEventId + 1)
            {
                w.NeedsResync = true;
                return KvApplyResult.Gap;
            }
            switch (kvEvent)
            {
                case KvBlocksStored stored:
                    foreach (var b in stored.Blocks)
                    {
                        AddLocked(index, w, b.BlockHash);
                    }
                    break;
                case KvBlocksRemoved removed:
                    foreach (var h in removed.BlockHashes)
                    {
                        RemoveLocked(index, w, h);
                    }
                    break;
                case KvCacheCleared:
                    ClearLocked(index, w);
                    break;
                default:
                    throw new ArgumentException($"unknown KV event type {kvEvent.GetType().Name}", nameof(kvEvent));
            }
            w.LastEventId = kvEvent.EventId;
            return KvApplyResult.Applied;
        }
    }

    /// <summary>Replaces everything known about <paramref name="workerId"/> with <paramref name="snapshot"/>; events after its <see cref="KvCacheSnapshot.LastEventId"/> apply on top.</summary>
    public void ApplySnapshot(string workerId, KvCacheSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(workerId);
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_gate)
        {
            var (index, w) = GetOrAddLocked(workerId);
            ClearLocked(index, w);
            foreach (var b in snapshot.Blocks)
            {
                AddLocked(index, w, b.BlockHash);
            }
            w.LastEventId = snapshot.LastEventId;
            w.NeedsResync = false;
        }
    }

    /// <summary>Forgets a worker (it left discovery); its blocks no longer count for anyone.</summary>
    public void RemoveWorker(string workerId)
    {
        lock (_gate)
        {
            if (!_workerIndex.Remove(workerId, out var index))
            {
                return;
            }
            ClearLocked(index, _workers[index]!);
            _workers[index] = null;
            _freeIndices.Push(index);
        }
    }

    /// <summary>
    /// For a request whose full blocks have the sequence hashes <paramref name="sequenceHashes"/>: the number of leading
    /// blocks each worker holds. Workers that hold none are left out.
    /// </summary>
    public Dictionary<string, int> FindMatches(ReadOnlySpan<ulong> sequenceHashes)
    {
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        lock (_gate)
        {
            if (_workerIndex.Count == 0 || sequenceHashes.IsEmpty)
            {
                return result;
            }
            var words = (_workers.Count + 63) / 64;
            Span<ulong> active = words <= 16 ? stackalloc ulong[words] : new ulong[words];
            for (var i = 0; i < sequenceHashes.Length; i++)
            {
                if (!_blocks.TryGetValue(sequenceHashes[i], out var set))
                {
                    Credit(active, i, result);
                    return result;
                }
                if (i == 0)
                {
                    set.CopyTo(active);
                }
                else
                {
                    // Workers that drop out here hold exactly i leading blocks.
                    var any = false;
                    for (var word = 0; word < active.Length; word++)
                    {
                        var kept = active[word] & set.Word(word);
                        var dropped = active[word] & ~kept;
                        while (dropped != 0)
                        {
                            var bit = BitOperations.TrailingZeroCount(dropped);
                            dropped &= dropped - 1;
                            result[_workers[(word * 64) + bit]!.Id] = i;
                        }
                        active[word] = kept;
                        any |= kept != 0;
                    }
                    if (!any)
                    {
                        return result;
                    }
                }
            }
            Credit(active, sequenceHashes.Length, result);
            return result;
        }
    }

    /// <summary>The leading blocks of <paramref name="sequenceHashes"/> that <paramref name="workerId"/> holds.</summary>
    public int Overlap(string workerId, ReadOnlySpan<ulong> sequenceHashes)
    {
        lock (_gate)
        {
            if (!_workerIndex.TryGetValue(workerId, out var index))
            {
                return 0;
            }
            var n = 0;
            while (n < sequenceHashes.Length && _blocks.TryGetValue(sequenceHashes[n], out var set) && set.Contains(index))
            {
                n++;
            }
            return n;
        }
    }

    private void Credit(ReadOnlySpan<ulong> active, int blocks, Dictionary<string, int> result)
    {
        if (blocks == 0)
        {
            return;
        }
        for (var word = 0; word < active.Length; word++)
        {
            var bits = active[word];
            while (bits != 0)
            {
                var bit = BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                result[_workers[(word * 64) + bit]!.Id] = blocks;
            }
        }
    }

    private (int Index, WorkerState State) GetOrAddLocked(string workerId)
    {
        if (_workerIndex.TryGetValue(workerId, out var index))
        {
            return (index, _workers[index]!);
        }
        var state = new WorkerState(workerId);
        if (_freeIndices.TryPop(out index))
        {
            _workers[index] = state;
        }
        else
        {
            index = _workers.Count;
            _workers.Add(state);
        }
        _workerIndex.Add(workerId, index);
        return (index, state);
    }

    private void AddLocked(int index, WorkerState w, ulong hash)
    {
        if (!w.Blocks.Add(hash))
        {
            return;
        }
        ref var set = ref CollectionsMarshal.GetValueRefOrAddDefault(_blocks, hash, out _);
        set.Add(index);
        if (MaxBlocksPerWorker > 0)
        {
            w.Order.Enqueue(hash);
            while (w.Blocks.Count > MaxBlocksPerWorker && w.Order.TryDequeue(out var oldest))
            {
                RemoveLocked(index, w, oldest);
            }
            if (w.Order.Count > 2 * Math.Max(MaxBlocksPerWorker, w.Blocks.Count))
            {
                // Drop queue entries of blocks already removed, so the queue stays proportional to the cap.
                var live = w.Order.Where(w.Blocks.Contains).Distinct().ToList();
                w.Order.Clear();
                foreach (var h in live)
                {
                    w.Order.Enqueue(h);
                }
            }
        }
    }

    private void RemoveLocked(int index, WorkerState w, ulong hash)
    {
        if (!w.Blocks.Remove(hash))
        {
            return;
        }
        ref var set = ref CollectionsMarshal.GetValueRefOrNullRef(_blocks, hash);
        if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref set) && set.Remove(index))
        {
            _blocks.Remove(hash);
        }
    }

    private void ClearLocked(int index, WorkerState w)
    {
        foreach (var hash in w.Blocks)
        {
            ref var set = ref CollectionsMarshal.GetValueRefOrNullRef(_blocks, hash);
            if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref set) && set.Remove(index))
            {
                _blocks.Remove(hash);
            }
        }
        w.Blocks.Clear();
        w.Order.Clear();
    }

    private sealed class WorkerState(string id)
    {
        public string Id { get; } = id;
        public HashSet<ulong> Blocks { get; } = [];

        /// <summary>Stored hashes in arrival order (only with a cap).</summary>
        public Queue<ulong> Order { get; } = new();

        public long LastEventId { get; set; }
        public bool NeedsResync { get; set; }
    }

    /// <summary>A set of worker indices: a mask for the first 64, a bitmap beyond.</summary>
    private struct WorkerSet
    {
        private ulong _low;
        private ulong[]? _high;

        public readonly ulong Word(int word) => word == 0 ? _low : (_high is { } h && word - 1 < h.Length ? h[word - 1] : 0);

        public readonly bool Contains(int index) => (Word(index >> 6) & (1UL << (index & 63))) != 0;

        public readonly void CopyTo(Span<ulong> words)
        {
            for (var i = 0; i < words.Length; i++)
            {
                words[i] = Word(i);
            }
        }

        public void Add(int index)
        {
            if (index < 64)
            {
                _low |= 1UL << index;
                return;
            }
            var word = (index >> 6) - 1;
            if (_high is null || _high.Length <= word)
            {
                Array.Resize(ref _high, word + 1);
            }
            _high[word] |= 1UL << (index & 63);
        }

        /// <summary>Removes <paramref name="index"/>; true when the set became empty.</summary>
        public bool Remove(int index)
        {
            if (index < 64)
            {
                _low &= ~(1UL << index);
            }
            else if (_high is { } h && (index >> 6) - 1 < h.Length)
            {
                h[(index >> 6) - 1] &= ~(1UL << (index & 63));
            }
            if (_low != 0)
            {
                return false;
            }
            if (_high is { } high)
            {
                foreach (var x in high)
                {
                    if (x != 0)
                    {
                        return false;
                    }
                }
            }
            return true;
        }
    }
}
