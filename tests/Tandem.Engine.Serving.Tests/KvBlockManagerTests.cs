using Tandem.Abstractions;
using Tandem.Engine.Inference;

namespace Tandem.Engine.Serving.Tests;

public class KvBlockManagerTests
{
    private const int BlockSize = 4;

    [Fact]
    public void TryAllocate_SharesCachedPrefixAndCountsReferences()
    {
        var m = new KvBlockManager(10, BlockSize);
        var tokens = Enumerable.Range(1, 12).ToArray();
        var hashes = BlockHashing.SequenceHashes(tokens, BlockSize);
        var a = new KvSequence();
        Assert.True(m.TryAllocate(a, hashes, 3, 12, 12, 0, out var hitA));
        Assert.Equal(0, hitA);
        Assert.Equal(3, a.Blocks.Count);
        m.Commit(a.Blocks, hashes, hashes, 0, 3);

        var b = new KvSequence();
        Assert.True(m.TryAllocate(b, hashes, 2, 12, 12, 0, out var hitB));
        Assert.Equal(2, hitB);
        Assert.Equal(a.Blocks.Take(2), b.Blocks.Take(2));
        Assert.NotEqual(a.Blocks[2], b.Blocks[2]);
        Assert.Equal(4, m.UsedBlocks);

        m.Free(a);
        Assert.Equal(3, m.UsedBlocks); // two shared blocks still held by b, a's third block is now evictable
        Assert.Equal(1, m.EvictableBlocks);
        m.Free(b);
        Assert.Equal(0, m.UsedBlocks);
        Assert.Equal(3, m.EvictableBlocks);
        Assert.Equal(10, m.AvailableBlocks);
    }

    [Fact]
    public void TryAllocate_AllOrNothingAndKeepsTheWatermark()
    {
        var m = new KvBlockManager(4, BlockSize);
        var a = new KvSequence();
        Assert.False(m.TryAllocate(a, [], 0, 20, 20, 0, out _)); // 5 blocks > 4
        Assert.Empty(a.Blocks);
        Assert.False(m.TryAllocate(a, [], 0, 16, 16, 1, out _)); // would leave 0 < 1 free
        Assert.True(m.TryAllocate(a, [], 0, 12, 12, 1, out _));
        Assert.Equal(1, m.AvailableBlocks);
        Assert.False(m.TryGrow(a, 20));
        Assert.Equal(3, a.Blocks.Count);
        Assert.True(m.TryGrow(a, 16));
        Assert.Equal(0, m.AvailableBlocks);
    }

    [Fact]
    public void Allocation_EvictsLeastRecentlyReleasedCachedBlocksFirst_SequenceTailsBeforeHeads()
    {
        var m = new KvBlockManager(4, BlockSize);
        var tokens = Enumerable.Range(1, 8).ToArray();
        var hashes = BlockHashing.SequenceHashes(tokens, BlockSize);
        var a = new KvSequence();
        Assert.True(m.TryAllocate(a, hashes, 2, 8, 8, 0, out _));
        m.Commit(a.Blocks, hashes, hashes, 0, 2);
        m.Free(a);
        Drain(m);

        var other = new KvSequence();
        Assert.True(m.TryAllocate(other, [], 0, 12, 12, 0, out _)); // 2 free + 1 evicted
        var removed = Assert.IsType<KvBlocksRemoved>(Drain(m).Single());
        Assert.Equal([hashes[1]], removed.BlockHashes); // the tail block went first; the prefix head survives
        Assert.Equal(1, m.CountCachedPrefix(hashes));
    }

    [Fact]
    public void Commit_PublishesStoredRunsWithParents_AndSkipsHashesAlreadyCached()
    {
        var m = new KvBlockManager(16, BlockSize);
        var tokens = Enumerable.Range(1, 16).ToArray();
        var hashes = BlockHashing.SequenceHashes(tokens, BlockSize).ToList();
        var own = Enumerable.Range(0, 4).Select(i => BlockHashing.TokensHash(tokens.AsSpan(i * BlockSize, BlockSize))).ToList();
        var a = new KvSequence();
        Assert.True(m.TryAllocate(a, hashes, 0, 16, 16, 0, out _));
        m.Commit(a.Blocks, hashes, own, 0, 2);
        var first = Assert.IsType<KvBlocksStored>(Drain(m).Single());
        Assert.Null(first.ParentHash);
        Assert.Equal([new KvStoredBlock(hashes[0], own[0]), new KvStoredBlock(hashes[1], own[1])], first.Blocks);

        // A second sequence computed the same block 2 independently: its twin stays uncached, no duplicate event.
        var b = new KvSequence();
        Assert.True(m.TryAllocate(b, [], 0, 16, 16, 0, out _));
        m.Commit(b.Blocks, hashes, own, 2, 3);
        m.Commit(a.Blocks, hashes, own, 2, 4);
        var events = Drain(m);
        var stored = Assert.IsType<KvBlocksStored>(Assert.Single(events.Take(1)));
        Assert.Equal(hashes[1], stored.ParentHash);
        var second = Assert.IsType<KvBlocksStored>(events[1]);
        Assert.Equal(hashes[2], second.ParentHash);
        Assert.Equal([hashes[3]], second.Blocks.Select(x => x.BlockHash));
        Assert.Equal(4, m.CachedBlocks);
        Assert.True(events.Zip(events.Skip(1)).All(p => p.Second.EventId == p.First.EventId + 1));
    }

    [Fact]
    public void Events_ReplayReconstructsTheCachedSet_AfterARandomWorkload()
    {
        var rng = new Random(7);
        var m = new KvBlockManager(24, BlockSize);
        var mirror = new HashSet<ulong>();
        var live = new List<KvSequence>();
        long lastId = 0;
        for (var step = 0; step < 3000; step++)
        {
            var action = rng.Next(10);
            if (action < 5)
            {
                // Prompts from a few shared prefixes so that hits, twins and evictions all happen.
                var prefix = rng.Next(4);
                var length = rng.Next(1, 30);
                var tokens = Enumerable.Range(0, length).Select(i => i < 8 ? prefix * 100 + i : rng.Next(6)).ToArray();
                var hashes = BlockHashing.SequenceHashes(tokens, BlockSize).ToList();
                var own = hashes.Select(_ => 0UL).ToList();
                var seq = new KvSequence();
                if (m.TryAllocate(seq, hashes, (length - 1) / BlockSize, length, length, 0, out var cached))
                {
                    m.Commit(seq.Blocks, hashes, own, cached, hashes.Count);
                    live.Add(seq);
                }
            }
            else if (action < 9 && live.Count > 0)
            {
                var i = rng.Next(live.Count);
                m.Free(live[i]);
                live.RemoveAt(i);
            }
            else if (action == 9 && rng.Next(20) == 0)
            {
                m.ResetPrefixCache();
            }
            foreach (var e in Drain(m))
            {
                Assert.Equal(lastId + 1, e.EventId);
                lastId = e.EventId;
                switch (e)
                {
                    case KvBlocksStored s:
                        foreach (var b in s.Blocks)
                        {
                            Assert.True(mirror.Add(b.BlockHash));
                        }
                        break;
                    case KvBlocksRemoved r:
                        foreach (var h in r.BlockHashes)
                        {
                            Assert.True(mirror.Remove(h));
                        }
                        break;
                    case KvCacheCleared:
                        mirror.Clear();
                        break;
                }
            }
            if (step % 100 == 0)
            {
                var snapshot = m.Snapshot();
                Assert.Equal(lastId, snapshot.LastEventId);
                Assert.Equal(mirror.Order(), snapshot.Blocks.Select(b => b.BlockHash).Order());
            }
        }
        Assert.Equal(mirror.Order(), m.Snapshot().Blocks.Select(b => b.BlockHash).Order());
        foreach (var seq in live)
        {
            m.Free(seq);
        }
        Assert.Equal(0, m.UsedBlocks);
        Assert.Equal(24, m.AvailableBlocks);
    }

    [Fact]
    public void Release_MoreThanAllocated_Throws()
    {
        var m = new KvBlockManager(2, BlockSize);
        var blocks = m.TryAllocateBlocks(1)!;
        m.Release(blocks);
        Assert.Throws<InvalidOperationException>(() => m.Release(blocks));
        Assert.Null(m.TryAllocateBlocks(3));
    }

    private static List<KvEvent> Drain(KvBlockManager m)
    {
        var list = new List<KvEvent>();
        while (m.TryReadEvent(out var e))
        {
            list.Add(e!);
        }
        return list;
    }
}
