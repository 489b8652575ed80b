using Tandem.Abstractions;
using Tandem.Engine.Sampling;

namespace Tandem.Engine.Tests.Sampling;

public class SamplerTests
{
    // p = [0.5, 0.3, 0.15, 0.05]
    private static readonly float[] FourTokens = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f)];

    [Fact]
    public void Sample_Greedy_ReturnsArgmaxWithLowestIdOnTies()
    {
        var sampler = new Sampler(SamplingParams.Greedy);
        Assert.Equal(1, sampler.Sample([1f, 5f, 5f, 2f], [], []));
        Assert.Equal(3, sampler.Sample([-1f, -5f, -5f, 2f], [], []));
        Assert.Equal(0, sampler.Sample([7f, 7f, 7f], [], []));
    }

    [Fact]
    public void Sample_TopK1_EqualsGreedy()
    {
        var rng = new Random(5);
        var sampler = new Sampler(new SamplingParams { TopK = 1, Temperature = 1.5f, Seed = 3 });
        var greedy = new Sampler(SamplingParams.Greedy);
        for (var t = 0; t < 50; t++)
        {
            var logits = Enumerable.Range(0, 500).Select(_ => (float)rng.NextDouble() * 4).ToArray();
            logits[rng.Next(500)] = logits.Max(); // a tie with the max somewhere
            Assert.Equal(greedy.Sample((float[])logits.Clone(), [], []), sampler.Sample((float[])logits.Clone(), [], []));
        }
    }

    [Fact]
    public void Sample_SameSeed_SameSequence_DifferentSeed_DifferentSequence()
    {
        var logits = Enumerable.Range(0, 100).Select(i => (float)Math.Sin(i)).ToArray();
        int[] Run(ulong seed)
        {
            var s = new Sampler(new SamplingParams { Seed = seed, TopP = 0.95f });
            return Enumerable.Range(0, 64).Select(_ => s.Sample((float[])logits.Clone(), [], [])).ToArray();
        }
        Assert.Equal(Run(42), Run(42));
        Assert.NotEqual(Run(42), Run(43));
    }

    [Fact]
    public void Sample_SeededGenerator_IsStableAcrossVersions()
    {
        // xoshiro256** seeded with splitmix64(0): the first output is fixed by the algorithm, not by .NET.
        var rng = new Xoshiro256StarStar(0);
        Assert.Equal(0x99EC5F36CB75F2B4UL, rng.NextUInt64());
    }

    [Theory]
    [InlineData(1.0f)]
    [InlineData(0.7f)]
    public void Sample_Temperature_FrequenciesMatchSoftmaxWithin5Sigma(float temperature)
    {
        float[] logits = [1f, 2f, 0.5f, -1f, 3f];
        var scaled = logits.Select(l => Math.Exp(l / temperature)).ToArray();
        var probs = scaled.Select(v => v / scaled.Sum()).ToArray();
        var sampler = new Sampler(new SamplingParams { Temperature = temperature, Seed = 1234 });
        const int Draws = 20000;
        var counts = new int[logits.Length];
        for (var i = 0; i < Draws; i++)
        {
            counts[sampler.Sample((float[])logits.Clone(), [], [])]++;
        }
        for (var t = 0; t < logits.Length; t++)
        {
            var mean = Draws * probs[t];
            var sigma = Math.Sqrt(Draws * probs[t] * (1 - probs[t]));
            Assert.True(Math.Abs(counts[t] - mean) <= 5 * sigma, $"token {t}: {counts[t]} draws, expected {mean:F0} ± {sigma:F0}");
        }
    }

    [Theory]
    [InlineData(0.75f, 2)] // before token 2 the mass is 0.8 ≥ 0.75
    [InlineData(0.85f, 3)] // before token 3 the mass is 0.95 ≥ 0.85
    [InlineData(0.4f, 1)]  // the top token alone reaches 0.4
    [InlineData(1.0f, 4)]
    public void Sample_TopP_KeepsExactlyTheNucleus(float topP, int kept)
    {
        var counts = Histogram(new SamplingParams { TopP = topP, Seed = 7 }, FourTokens, 4000);
        for (var t = 0; t < 4; t++)
        {
            if (t < kept)
            {
                Assert.True(counts[t] > 0, $"token {t} is in the nucleus but never drawn");
            }
            else
            {
                Assert.Equal(0, counts[t]);
            }
        }
    }

    [Fact]
    public void Sample_TopPOnLargeVocab_DrawsOnlyFromNucleus()
    {
        // 150k tokens: 300 with logit 10 (97.8 % of the mass together), the rest 0; top_p 0.9 keeps 277 of the 300
        // (0.9 × (300 e¹⁰ + 149700) / e¹⁰ = 276.1, so the nucleus ends with the 277th).
        var vocab = 150_000;
        var logits = new float[vocab];
        var rng = new Random(11);
        var high = new HashSet<int>();
        while (high.Count < 300)
        {
            high.Add(rng.Next(vocab));
        }
        foreach (var h in high)
        {
            logits[h] = 10f;
        }
        var sampler = new Sampler(new SamplingParams { TopP = 0.9f, Seed = 5 });
        var seen = new HashSet<int>();
        for (var i = 0; i < 2000; i++)
        {
            var t = sampler.Sample((float[])logits.Clone(), [], []);
            Assert.Contains(t, high);
            seen.Add(t);
        }
        // Equal logits are ordered by id, so the nucleus is the lowest 277 ids of the high set.
        var nucleus = high.Order().Take(277).ToHashSet();
        Assert.Subset(nucleus, seen);
        Assert.True(seen.Count > 250, $"only {seen.Count} distinct tokens drawn");
    }

    [Fact]
    public void Sample_TopKOnLargeVocab_DrawsOnlyTheKBest()
    {
        var vocab = 150_000;
        var logits = new float[vocab];
        for (var i = 0; i < vocab; i++)
        {
            logits[i] = (float)((i * 7919) % vocab) / vocab; // a permutation of distinct values
        }
        var best = Enumerable.Range(0, vocab).OrderByDescending(i => logits[i]).Take(40).ToHashSet();
        var sampler = new Sampler(new SamplingParams { TopK = 40, Temperature = 0.01f, Seed = 2 });
        for (var i = 0; i < 200; i++)
        {
            Assert.Contains(sampler.Sample((float[])logits.Clone(), [], []), best);
        }
    }

    [Theory]
    [InlineData(0.25f, 3)] // p ≥ 0.125 keeps 0.5, 0.3, 0.15
    [InlineData(0.5f, 2)]  // p ≥ 0.25 keeps 0.5, 0.3
    [InlineData(1.0f, 1)]
    public void Sample_MinP_KeepsTokensAboveFractionOfMax(float minP, int kept)
    {
        foreach (var topK in new[] { 0, 3 })
        {
            var counts = Histogram(new SamplingParams { MinP = minP, TopK = topK, Seed = 8 }, FourTokens, 4000);
            for (var t = 0; t < 4; t++)
            {
                Assert.True(t < Math.Min(kept, topK == 0 ? 4 : topK) ? counts[t] > 0 : counts[t] == 0, $"top_k {topK} token {t}: {counts[t]}");
            }
        }
    }

    [Fact]
    public void ApplyPenalties_AllThree_GiveExactLogits()
    {
        var sampler = new Sampler(new SamplingParams { RepetitionPenalty = 2f, PresencePenalty = 0.5f, FrequencyPenalty = 0.25f });
        float[] logits = [2f, -2f, 1f, 0.5f, 3f];
        sampler.ApplyPenalties(logits, [0, 1, 0], [1, 2, 2]);
        // repetition over {0, 1, 2}: 2/2, −2·2, 1/2; then output counts {1: 1, 2: 2}: −(0.5 + 0.25), −(0.5 + 0.5).
        Assert.Equal([1f, -4.75f, -0.5f, 0.5f, 3f], logits);
        // Buffers are reset between calls: the same call again gives the same result on fresh logits.
        float[] again = [2f, -2f, 1f, 0.5f, 3f];
        sampler.ApplyPenalties(again, [0, 1, 0], [1, 2, 2]);
        Assert.Equal(logits, again);
    }

    [Fact]
    public void ApplyPenalties_PresenceAndFrequencyIgnorePrompt()
    {
        var sampler = new Sampler(new SamplingParams { PresencePenalty = 1f, FrequencyPenalty = -0.5f });
        float[] logits = [0f, 0f, 0f];
        sampler.ApplyPenalties(logits, [0, 0], [2, 2, 2]);
        Assert.Equal([0f, 0f, -1f + 1.5f], logits);
    }

    [Fact]
    public void Sample_PenaltyChangesGreedyChoice()
    {
        var sampler = new Sampler(SamplingParams.Greedy with { RepetitionPenalty = 3f });
        Assert.Equal(1, sampler.Sample([2f, 1f], [0], []));
    }

    [Fact]
    public void Sample_Logprob_IsLogSoftmaxBeforeTemperature()
    {
        var greedy = new Sampler(SamplingParams.Greedy);
        Assert.Equal(1, greedy.Sample([0f, MathF.Log(3f)], [], [], out var logprob));
        Assert.Equal(Math.Log(0.75), logprob, 1e-6);
        var hot = new Sampler(new SamplingParams { Temperature = 0.1f, TopK = 1, Seed = 1 });
        Assert.Equal(1, hot.Sample([0f, MathF.Log(3f)], [], [], out logprob));
        Assert.Equal(Math.Log(0.75), logprob, 1e-6);
    }

    [Fact]
    public void Sample_TokenOutsideVocabulary_Throws()
    {
        var sampler = new Sampler(new SamplingParams { RepetitionPenalty = 1.1f });
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Sample(new float[4], [4], []));
    }

    [Fact]
    public void SelectSmallest_RandomKeys_PutsKSmallestFirst()
    {
        var rng = new Random(4);
        foreach (var k in new[] { 1, 2, 10, 500, 999 })
        {
            var keys = Enumerable.Range(0, 1000).Select(_ => (ulong)rng.NextInt64()).ToArray();
            var expected = keys.Order().Take(k).ToArray();
            Sampler.SelectSmallest(keys, k);
            Assert.Equal(expected, keys[..k].Order().ToArray());
        }
    }

    private static int[] Histogram(SamplingParams p, float[] logits, int draws)
    {
        var sampler = new Sampler(p);
        var counts = new int[logits.Length];
        for (var i = 0; i < draws; i++)
        {
            counts[sampler.Sample((float[])logits.Clone(), [], [])]++;
        }
        return counts;
    }
}
