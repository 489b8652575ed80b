using Tandem.Engine.Inference;
using Tandem.Engine.Kernels;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Inference;

public class TransformerTests
{
    /// <summary>float32 engine versus float64 reference: logits may differ by rounding, bounded relative to their scale.</summary>
    private const double Tolerance = 2e-4;

    public static TheoryData<string, string> Features => new()
    {
        { "llama-gqa-interleaved", "optimized" },
        { "llama-gqa-interleaved", "reference" },
        { "neox-mha", "optimized" },
        { "qwen2-bias", "optimized" },
        { "qwen3-qknorm", "optimized" },
        { "tied", "optimized" },
        { "llama3-scaling", "optimized" },
        { "linear-scaling", "optimized" },
        { "f16", "optimized" },
        { "bf16", "optimized" },
        { "q8_0", "optimized" },
    };

    private static (ModelConfig Config, TensorType Type) Variant(string name) => name switch
    {
        "llama-gqa-interleaved" => (InMemoryModel.Config(rope: RopeStyle.Interleaved), TensorType.F32),
        "neox-mha" => (InMemoryModel.Config(kvHeads: 6), TensorType.F32),
        "qwen2-bias" => (InMemoryModel.Config(arch: "qwen2", bias: true), TensorType.F32),
        "qwen3-qknorm" => (InMemoryModel.Config(arch: "qwen3", qkNorm: true, heads: 4, kvHeads: 2, dim: 64), TensorType.F32),
        "tied" => (InMemoryModel.Config(tied: true), TensorType.F32),
        "llama3-scaling" => (InMemoryModel.Config(dim: 64, heads: 8, kvHeads: 4, scaling: new RopeScaling("llama3", 8, 1, 16, 1024)), TensorType.F32),
        "linear-scaling" => (InMemoryModel.Config(scaling: new RopeScaling("linear", 4)), TensorType.F32),
        "f16" => (InMemoryModel.Config(), TensorType.F16),
        "bf16" => (InMemoryModel.Config(), TensorType.BF16),
        "q8_0" => (InMemoryModel.Config(dim: 64, heads: 8, kvHeads: 4, ffn: 96), TensorType.Q8_0),
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(Features))]
    public void Forward_RandomModel_MatchesNaiveReferenceEveryStep(string variant, string kernels)
    {
        var (config, type) = Variant(variant);
        using var weights = InMemoryModel.Create(config, seed: 42, type);
        var model = new Transformer(config, weights, KernelSet.Create(kernels, 2), threads: 2);
        var naive = new NaiveLlama(config, weights);
        using var cache = model.CreateCache(numBlocks: 8, blockSize: 4);
        var seq = new KvSequence();
        var logits = new float[config.VocabSize];
        var rng = new Random(7);
        for (var step = 0; step < 30; step++)
        {
            var token = rng.Next(config.VocabSize);
            Assert.True(seq.TryReserve(cache, seq.Length + 1));
            model.Forward(cache, [new ForwardChunk(seq, new[] { token })], logits);
            AssertClose(naive.Step(token), logits, $"{variant} step {step}");
        }
    }

    /// <summary>Head dims 8 (portable attention), 16 and 32 (AVX-512 tiles); groups 1, 2, 4, 8 (tiles of 4 tokens, 2 tokens, one token, half a group).</summary>
    [Theory]
    [InlineData(48, 6, 2, 2)]
    [InlineData(64, 4, 2, 1)]
    [InlineData(64, 4, 2, 3)]
    [InlineData(128, 4, 4, 2)]
    [InlineData(128, 8, 2, 2)]
    [InlineData(128, 8, 1, 3)]
    public void Forward_PrefillInChunks_MatchesTokenByToken(int dim, int heads, int kvHeads, int threads)
    {
        var config = InMemoryModel.Config(rope: RopeStyle.Interleaved, dim: dim, heads: heads, kvHeads: kvHeads);
        using var weights = InMemoryModel.Create(config, seed: 3);
        using var kernels = (OptimizedKernels)KernelSet.CreateOptimized(threads);
        var model = new Transformer(config, weights, kernels);
        var prompt = Enumerable.Range(0, 37).Select(i => (i * 31) % config.VocabSize).ToArray();
        var naive = new NaiveLlama(config, weights);
        double[] expected = [];
        foreach (var t in prompt)
        {
            expected = naive.Step(t);
        }
        foreach (var chunk in new[] { 1, 5, 16, 37 })
        {
            using var cache = model.CreateCache(numBlocks: 16, blockSize: 4);
            var seq = new KvSequence();
            Assert.True(seq.TryReserve(cache, prompt.Length));
            var logits = new float[config.VocabSize];
            for (var start = 0; start < prompt.Length; start += chunk)
            {
                var n = Math.Min(chunk, prompt.Length - start);
                model.Forward(cache, [new ForwardChunk(seq, prompt.AsMemory(start, n), start + n == prompt.Length)], logits);
            }
            Assert.Equal(prompt.Length, seq.Length);
            AssertClose(expected, logits, $"chunk {chunk}");
        }
    }

    [Theory]
    [InlineData(48, 6, 2, 2)]
    [InlineData(64, 4, 4, 3)]
    [InlineData(128, 8, 2, 1)]
    public void Forward_SequencesBatchedWithInterleavedBlocks_MatchSeparateRuns(int dim, int heads, int kvHeads, int threads)
    {
        var config = InMemoryModel.Config(bias: true, dim: dim, heads: heads, kvHeads: kvHeads);
        using var weights = InMemoryModel.Create(config, seed: 11);
        using var kernels = (OptimizedKernels)KernelSet.CreateOptimized(threads);
        var model = new Transformer(config, weights, kernels);
        int[][] prompts = [[5, 9, 13, 2, 40, 41, 42], [77, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]];
        var references = prompts.Select(_ => new NaiveLlama(config, weights)).ToArray();
        using var cache = model.CreateCache(numBlocks: 32, blockSize: 2);
        var seqs = prompts.Select(_ => new KvSequence()).ToArray();
        var logits = new float[prompts.Length * config.VocabSize];

        // Step 1: all three prompts in one forward, blocks allocated round-robin so tables interleave.
        for (var len = 2; len < prompts.Max(p => p.Length) + 2; len += 2)
        {
            for (var i = 0; i < seqs.Length; i++)
            {
                Assert.True(seqs[i].TryReserve(cache, Math.Min(len, prompts[i].Length)));
            }
        }
        model.Forward(cache, prompts.Select((p, i) => new ForwardChunk(seqs[i], p)).ToList(), logits);
        // Plain loops on purpose: LINQ's Select(...).Last() on an array would run the selector for the last element only.
        var expected = new double[prompts.Length][];
        for (var i = 0; i < prompts.Length; i++)
        {
            foreach (var t in prompts[i])
            {
                expected[i] = references[i].Step(t);
            }
        }
        for (var i = 0; i < prompts.Length; i++)
        {
            AssertClose(expected[i], logits.AsSpan(i * config.VocabSize, config.VocabSize), $"prompt {i}");
        }

        // Step 2..6: decode all three together (one token each), still matching the independent runs.
        for (var step = 0; step < 5; step++)
        {
            var tokens = new[] { 10 + step, 20 + step, 30 + step };
            for (var i = 0; i < seqs.Length; i++)
            {
                Assert.True(seqs[i].TryReserve(cache, seqs[i].Length + 1));
            }
            model.Forward(cache, seqs.Select((s, i) => new ForwardChunk(s, new[] { tokens[i] })).ToList(), logits);
            for (var i = 0; i < prompts.Length; i++)
            {
                AssertClose(references[i].Step(tokens[i]), logits.AsSpan(i * config.VocabSize, config.VocabSize), $"decode {step} seq {i}");
            }
        }
    }

    [Theory]
    [InlineData(48, 6, 2)]
    [InlineData(64, 4, 2)]
    public void Forward_SteadyStateDecodeStep_AllocatesNothing(int dim, int heads, int kvHeads)
    {
        var config = InMemoryModel.Config(dim: dim, heads: heads, kvHeads: kvHeads);
        using var weights = InMemoryModel.Create(config, seed: 5);
        using var kernels = new OptimizedKernels(2, parallelThreshold: 0);
        var model = new Transformer(config, weights, kernels);
        using var cache = model.CreateCache(numBlocks: 32, blockSize: 4);
        var seqs = Enumerable.Range(0, 3).Select(_ => new KvSequence()).ToArray();
        foreach (var seq in seqs)
        {
            Assert.True(seq.TryReserve(cache, 12));
            model.Forward(cache, [new ForwardChunk(seq, new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 })], new float[config.VocabSize]);
        }
        ForwardChunk[] step = [.. seqs.Select((s, i) => new ForwardChunk(s, new[] { 10 + i }))];
        var logits = new float[seqs.Length * config.VocabSize];
        // The fewest bytes any of several steps allocated: an allocation made by every step shows, a one-off one outside
        // the forward pass's control (24 bytes on one step, seen once on a CI machine) does not.
        var allocated = long.MaxValue;
        for (var i = 0; i < 10; i++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            model.Forward(cache, step, logits);
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            foreach (var seq in seqs)
            {
                seq.Length = 9;
            }
        }
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Forward_InvalidInput_ThrowsClearErrors()
    {
        var config = InMemoryModel.Config(context: 8);
        using var weights = InMemoryModel.Create(config, seed: 1);
        var model = new Transformer(config, weights, KernelSet.Reference, threads: 1);
        using var cache = model.CreateCache(numBlocks: 4, blockSize: 4);
        var seq = new KvSequence();
        var logits = new float[config.VocabSize];

        var noRoom = Assert.Throws<InvalidOperationException>(() => model.Forward(cache, [new ForwardChunk(seq, new[] { 1 })], logits));
        Assert.Contains("no cache room", noRoom.Message);

        Assert.True(seq.TryReserve(cache, 12));
        var badToken = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(cache, [new ForwardChunk(seq, new[] { config.VocabSize })], logits));
        Assert.Contains("vocabulary", badToken.Message);

        var tooLong = Assert.Throws<ArgumentException>(() => model.Forward(cache, [new ForwardChunk(seq, new int[9])], logits));
        Assert.Contains("context length 8", tooLong.Message);
        Assert.Equal(0, seq.Length);
    }

    [Fact]
    public void TryReserve_CacheExhausted_AllocatesNothing()
    {
        var config = InMemoryModel.Config();
        using var weights = InMemoryModel.Create(config, seed: 1);
        var model = new Transformer(config, weights, KernelSet.Reference, threads: 1);
        using var cache = model.CreateCache(numBlocks: 3, blockSize: 4);
        var a = new KvSequence();
        Assert.True(a.TryReserve(cache, 8));
        Assert.Equal(1, cache.FreeBlockCount);
        var b = new KvSequence();
        Assert.False(b.TryReserve(cache, 9));
        Assert.Empty(b.Blocks);
        Assert.Equal(1, cache.FreeBlockCount);
        a.Release(cache);
        Assert.Equal(3, cache.FreeBlockCount);
    }

    [Fact]
    public void InverseFrequencies_Llama3Scaling_FollowsPublishedFormula()
    {
        var config = InMemoryModel.Config(dim: 64, heads: 8, scaling: new RopeScaling("llama3", 8, 1, 16, 1024));
        var inv = RotaryEmbedding.InverseFrequencies(config, null);
        // head dim 8 → base frequencies 1, 0.1, 0.01, 0.001; wavelengths 6.3, 63, 628, 6283 against bounds 64 and 1024.
        Assert.Equal(1.0, inv[0], 12);
        Assert.Equal(0.1, inv[1], 12);
        var smooth = ((1024 / (2 * Math.PI / 0.01)) - 1) / 15;
        Assert.Equal(((1 - smooth) * 0.01 / 8) + (smooth * 0.01), inv[2], 12);
        Assert.Equal(0.001 / 8, inv[3], 12);
    }

    internal static void AssertClose(double[] expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = 1 + expected.Max(Math.Abs);
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        }
        Assert.True(worst <= Tolerance * scale, $"{what}: max |Δlogit| {worst:E3} exceeds {Tolerance * scale:E3}");
    }
}
