using Tandem.Abstractions;
using Tandem.Routing.Kv;

namespace Tandem.Routing.Tests;

public class KvIndexerTests
{
    /// <summary>The obvious model: per worker, the set of cached hashes; overlap = leading request hashes in the set.</summary>
    private sealed class BruteForce
    {
        public Dictionary<string, HashSet<ulong>> Sets { get; } = [];

        public void Apply(string worker, KvEvent e)
        {
            var set = Sets.TryGetValue(worker, out var s) ? s : Sets[worker] = [];
            switch (e)
            {
                case KvBlocksStored stored:
                    set.UnionWith(stored.Blocks.Select(b => b.BlockHash));
                    break;
                case KvBlocksRemoved removed:
                    set.ExceptWith(removed.BlockHashes);
                    break;
                case KvCacheCleared:
                    set.Clear();
                    break;
            }
        }

        public Dictionary<string, int> Matches(ulong[] hashes)
        {
            var result = new Dictionary<string, int>();
            foreach (var (worker, set) in Sets)
            {
                var n = 0;
                while (n < hashes.Length && set.Contains(hashes[n]))
                {
                    n++;
                }
                if (n > 0)
                {
                    result[worker] = n;
                }
            }
            return result;
        }
    }

    /// <summary>Random prefix trees: a few roots, chains that branch, so requests share prefixes of random lengths.</summary>
    private static List<ulong[]> Chains(Random random, int count, int maxLength)
    {
        var chains = new List<ulong[]>();
        for (var i = 0; i < count; i++)
        {
            var length = random.Next(1, maxLength + 1);
            var chain = new ulong[length];
            ulong? parent = null;
            var branchAt = chains.Count > 0 && random.Next(3) > 0 ? random.Next(length + 1) : 0;
            var source = chains.Count > 0 ? chains[random.Next(chains.Count)] : null;
            for (var b = 0; b < length; b++)
            {
                chain[b] = source is not null && b < branchAt && b < source.Length
                    ? source[b]
                    : BlockHashing.Chain(parent, (ulong)random.NextInt64(), BlockHashing.DefaultSeed);
                parent = chain[b];
            }
            chains.Add(chain);
        }
        return chains;
    }

    private static void AssertSame(BruteForce model, KvIndexer index, IEnumerable<ulong[]> queries)
    {
        foreach (var q in queries)
        {
            var expected = model.Matches(q);
            var actual = index.FindMatches(q);
            Assert.Equal(expected.OrderBy(p => p.Key), actual.OrderBy(p => p.Key));
            foreach (var worker in model.Sets.Keys)
            {
                Assert.Equal(expected.GetValueOrDefault(worker), index.Overlap(worker, q));
            }
        }
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(2, 8)]
    [InlineData(3, 70)] // beyond 64 workers: the overflow bitmap
    public void FindMatches_RandomEvents_EqualsBruteForceAfterEveryEvent(int seed, int workers)
    {
        var random = new Random(seed);
        var chains = Chains(random, 40, 12);
        var model = new BruteForce();
        var index = new KvIndexer();
        var nextId = new Dictionary<string, long>();
        for (var step = 0; step < 600; step++)
        {
            var worker = "w" + random.Next(workers);
            var id = nextId[worker] = nextId.GetValueOrDefault(worker) + 1;
            var chain = chains[random.Next(chains.Count)];
            KvEvent e = random.Next(20) switch
            {
                0 => new KvCacheCleared(id),
                < 12 => Stored(id, chain, random),
                _ => new KvBlocksRemoved(id, [.. chain.Where(_ => random.Next(3) == 0)]),
            };
            Assert.Equal(KvApplyResult.Applied, index.Apply(worker, e));
            model.Apply(worker, e);
            AssertSame(model, index, chains.Take(10).Append(chains[random.Next(chains.Count)]));
        }
        Assert.Equal(model.Sets.Values.SelectMany(s => s).Distinct().Count(), index.BlockCount);
    }

    private static KvBlocksStored Stored(long id, ulong[] chain, Random random)
    {
        var from = random.Next(chain.Length);
        var to = random.Next(from, chain.Length) + 1;
        return new KvBlocksStored(id, from == 0 ? null : chain[from - 1], [.. chain[from..to].Select(h => new KvStoredBlock(h, h ^ 1))]);
    }

    [Fact]
    public void RemoveWorker_ForgetsItsBlocksOnly()
    {
        var random = new Random(5);
        var chains = Chains(random, 20, 10);
        var model = new BruteForce();
        var index = new KvIndexer();
        for (var w = 0; w < 4; w++)
        {
            for (var i = 0; i < 10; i++)
            {
                var e = new KvBlocksStored(i + 1, null, [.. chains[random.Next(chains.Count)].Select(h => new KvStoredBlock(h, 0))]);
                index.Apply("w" + w, e);
                model.Apply("w" + w, e);
            }
        }
        index.RemoveWorker("w2");
        model.Sets.Remove("w2");
        AssertSame(model, index, chains);
        Assert.DoesNotContain("w2", index.Workers);
        Assert.Equal(model.Sets.Values.SelectMany(s => s).Distinct().Count(), index.BlockCount);
        // The index slot is reused by a new worker without inheriting anything.
        index.Apply("w9", new KvBlocksStored(1, null, [new KvStoredBlock(chains[0][0], 0)]));
        model.Apply("w9", new KvBlocksStored(1, null, [new KvStoredBlock(chains[0][0], 0)]));
        AssertSame(model, index, chains);
    }

    [Fact]
    public void Apply_Gap_RefusesUntilSnapshot_ThenContinues()
    {
        var index = new KvIndexer();
        Assert.Equal(KvApplyResult.Applied, index.Apply("a", new KvBlocksStored(1, null, [new(10, 0), new(11, 0)])));
        Assert.Equal(KvApplyResult.Stale, index.Apply("a", new KvBlocksStored(1, null, [new(10, 0)])));
        Assert.Equal(KvApplyResult.Gap, index.Apply("a", new KvBlocksRemoved(3, [10])));
        Assert.True(index.NeedsResync("a"));
        Assert.Equal(KvApplyResult.Gap, index.Apply("a", new KvBlocksRemoved(4, [11])));
        index.ApplySnapshot("a", new KvCacheSnapshot(4, 16, [new KvSnapshotBlock(20, null, 0), new KvSnapshotBlock(21, 20, 0)]));
        Assert.False(index.NeedsResync("a"));
        Assert.Equal(0, index.Overlap("a", [10, 11]));
        Assert.Equal(2, index.Overlap("a", [20, 21, 22]));
        Assert.Equal(KvApplyResult.Stale, index.Apply("a", new KvBlocksRemoved(4, [20])));
        Assert.Equal(KvApplyResult.Applied, index.Apply("a", new KvBlocksStored(5, 21, [new(22, 0)])));
        Assert.Equal(3, index.Overlap("a", [20, 21, 22]));
    }

    [Fact]
    public void Apply_FirstEventOfUnknownWorkerNotOne_IsAGap()
    {
        var index = new KvIndexer();
        Assert.Equal(KvApplyResult.Gap, index.Apply("late", new KvBlocksStored(17, null, [new(1, 0)])));
    }

    [Fact]
    public void FindMatches_HoleInPrefix_StopsAtTheHole()
    {
        var index = new KvIndexer();
        index.Apply("a", new KvBlocksStored(1, null, [new(1, 0), new(2, 0), new(3, 0)]));
        index.Apply("a", new KvBlocksRemoved(2, [2]));
        index.Apply("b", new KvBlocksStored(1, null, [new(1, 0), new(2, 0)]));
        var m = index.FindMatches([1, 2, 3]);
        Assert.Equal(1, m["a"]);
        Assert.Equal(2, m["b"]);
    }

    [Fact]
    public void Cap_KeepsAtMostMaxBlocksPerWorker_DroppingOldest()
    {
        var index = new KvIndexer(maxBlocksPerWorker: 100);
        for (var i = 0; i < 1000; i++)
        {
            index.Apply("a", new KvBlocksStored(i + 1, null, [new((ulong)i, 0)]));
        }
        Assert.Equal(100, index.WorkerBlockCount("a"));
        Assert.Equal(0, index.Overlap("a", [0]));
        Assert.Equal(1, index.Overlap("a", [999]));
    }
}
