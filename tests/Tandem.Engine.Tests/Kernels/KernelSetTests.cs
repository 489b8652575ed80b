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
}
