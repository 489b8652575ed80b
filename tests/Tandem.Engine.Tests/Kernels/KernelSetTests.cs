using Tandem.Engine.Kernels;

namespace Tandem.Engine.Tests.Kernels;

public class KernelSetTests
{
    [Theory]
    [InlineData("reference")]
    [InlineData("optimized")]
    [InlineData("Optimized")]
    public void Create_KnownName_ReturnsThatSet(string name)
    {
        var kernels = KernelSet.Create(name, 2);
        Assert.Equal(name.ToLowerInvariant(), kernels.Name);
        (kernels as IDisposable)?.Dispose();
    }

    [Fact]
    public void Create_UnknownName_ThrowsListingValidNames()
    {
        var ex = Assert.Throws<ArgumentException>(() => KernelSet.Create("fast", 1));
        Assert.Contains("reference", ex.Message, StringComparison.Ordinal);
        Assert.Contains("optimized", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateOptimized_ZeroThreads_UsesProcessorCount()
    {
        using var kernels = (OptimizedKernels)KernelSet.CreateOptimized(0);
        Assert.Equal(Environment.ProcessorCount, kernels.Threads);
    }

    [Fact]
    public void SimdLevel_MatchesExpectationWhenGiven()
    {
        // Run the kernel tests with e.g. DOTNET_EnableAVX512=0 TANDEM_EXPECT_SIMD=avx2+fma to cover the fallback paths.
        var expected = Environment.GetEnvironmentVariable("TANDEM_EXPECT_SIMD");
        Assert.Contains(KernelSet.SimdLevel, new[] { "avx512", "avx2+fma", "scalar" });
        if (!string.IsNullOrEmpty(expected))
        {
            Assert.Equal(expected, KernelSet.SimdLevel);
        }
    }

    [Theory]
    [InlineData("reference", 1, 0, 1)]
    [InlineData("reference", 1, 17, 4)]
    [InlineData("optimized", 1, 17, 1)]
    [InlineData("optimized", 2, 1, 1)]
    [InlineData("optimized", 2, 1000, 1)]
    [InlineData("optimized", 2, 1000, 7)]
    [InlineData("optimized", 3, 5, 2)]
    [InlineData("optimized", 3, 999, 3)]
    public void ParallelFor_CoversEveryIndexOnceInRangesOfAtMostGrain(string name, int threads, int count, int grain)
    {
        var kernels = KernelSet.Create(name, threads);
        try
        {
            var hits = new int[count];
            var maxRange = 0;
            kernels.ParallelFor(count, (start, end) =>
            {
                Assert.InRange(end - start, 1, grain);
                InterlockedMax(ref maxRange, end - start);
                for (var i = start; i < end; i++)
                {
                    Interlocked.Increment(ref hits[i]);
                }
            }, grain);
            Assert.All(hits, h => Assert.Equal(1, h));
        }
        finally
        {
            (kernels as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void ParallelFor_BodyCallsPooledMatMul_RunsInlineWithoutDeadlock()
    {
        using var kernels = new OptimizedKernels(2, parallelThreshold: 0);
        using var w = Tandem.Engine.Tensors.NativeTensorBuffer.FromFloats("w", Tandem.Engine.Tensors.TensorType.F32, 64, 32, Enumerable.Range(0, 64 * 32).Select(i => (i % 7) * 0.1f).ToArray());
        var input = Enumerable.Range(0, 32).Select(i => i * 0.01f).ToArray();
        var expected = new float[64];
        KernelSet.Reference.MatMul(w.Tensor, input, expected, 1);
        var outputs = new float[8][];
        kernels.ParallelFor(8, (start, end) =>
        {
            for (var i = start; i < end; i++)
            {
                outputs[i] = new float[64];
                kernels.MatMul(w.Tensor, input, outputs[i], 1);
                kernels.ParallelFor(3, (_, _) => { });
            }
        });
        foreach (var o in outputs)
        {
            for (var r = 0; r < 64; r++)
            {
                Assert.Equal(expected[r], o[r], 1e-4f);
            }
        }
    }

    [Fact]
    public void ParallelFor_BodyThrows_ExceptionReachesCaller()
    {
        using var kernels = new OptimizedKernels(2);
        var ex = Assert.Throws<InvalidOperationException>(() => kernels.ParallelFor(100, (start, _) =>
        {
            if (start == 57)
            {
                throw new InvalidOperationException("boom");
            }
        }));
        Assert.Equal("boom", ex.Message);
        var sum = 0;
        kernels.ParallelFor(10, (start, end) => Interlocked.Add(ref sum, end - start));
        Assert.Equal(10, sum);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
