using Tandem.Engine.Kernels;

namespace Tandem.Engine.Tests.Kernels;

public class VectorKernelTests
{
    private static readonly IKernels Reference = KernelSet.Reference;
    private static readonly OptimizedKernels Optimized = new(1);

    public static TheoryData<int> Lengths() => [1, 7, 16, 33, 100, 1000, 4099];

    [Fact]
    public void RmsNorm_HandComputed_MatchesBothKernels()
    {
        // mean(x²) = 4 ⇒ x / 2 × w.
        foreach (var k in new IKernels[] { Reference, Optimized })
        {
            var output = new float[4];
            k.RmsNorm([2, 2, 2, 2], [1, 2, 3, 4], 0f, output);
            Assert.Equal([1f, 2f, 3f, 4f], output);
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNorm_OptimizedVsReference_AgreeWithin1e5(int length)
    {
        var rng = new Random(length);
        var x = MatMulTests.RandomFloats(rng, length);
        var w = MatMulTests.RandomFloats(rng, length);
        var expected = new float[length];
        var actual = new float[length];
        Reference.RmsNorm(x, w, 1e-5f, expected);
        Optimized.RmsNorm(x, w, 1e-5f, actual);
        AssertClose(expected, actual, 1e-5f);
    }

    [Fact]
    public void Softmax_HandComputed_MatchesBothKernels()
    {
        foreach (var k in new IKernels[] { Reference, Optimized })
        {
            float[] x = [0f, MathF.Log(3f)];
            k.Softmax(x);
            AssertClose([0.25f, 0.75f], x, 1e-6f);
            float[] big = [1000f, 1000f, float.NegativeInfinity]; // overflows without the max subtraction
            k.Softmax(big);
            Assert.Equal([0.5f, 0.5f, 0f], big);
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Softmax_OptimizedVsReference_AgreeWithin1e6(int length)
    {
        var rng = new Random(length + 1);
        var x = MatMulTests.RandomFloats(rng, length).Select(v => v * 20).ToArray();
        var expected = (float[])x.Clone();
        Reference.Softmax(expected);
        Optimized.Softmax(x);
        AssertClose(expected, x, 1e-6f);
        Assert.Equal(1.0, x.Sum(v => (double)v), 4);
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Dot_OptimizedVsReference_AgreeWithin1e5(int length)
    {
        var rng = new Random(length + 2);
        var a = MatMulTests.RandomFloats(rng, length);
        var b = MatMulTests.RandomFloats(rng, length);
        Assert.Equal(Reference.Dot(a, b), Optimized.Dot(a, b), 1e-5 * length);
        Assert.Equal(32f, Optimized.Dot([1, 2, 3], [4, 5, 6]));
        Assert.Equal(32f, Reference.Dot([1, 2, 3], [4, 5, 6]));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void MultiplyAdd_OptimizedVsReference_AgreeWithin1e6(int length)
    {
        var rng = new Random(length + 3);
        var x = MatMulTests.RandomFloats(rng, length);
        var y1 = MatMulTests.RandomFloats(rng, length);
        var y2 = (float[])y1.Clone();
        Reference.MultiplyAdd(0.7f, x, y1);
        Optimized.MultiplyAdd(0.7f, x, y2);
        AssertClose(y1, y2, 1e-6f);
    }

    [Fact]
    public void MultiplyAdd_HandComputed_MatchesBothKernels()
    {
        foreach (var k in new IKernels[] { Reference, Optimized })
        {
            float[] y = [3, 4];
            k.MultiplyAdd(2f, [1, 2], y);
            Assert.Equal([5f, 8f], y);
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SiluMultiply_OptimizedVsReference_AgreeWithin1e5(int length)
    {
        var rng = new Random(length + 4);
        var gate1 = MatMulTests.RandomFloats(rng, length).Select(v => v * 12).ToArray();
        var up = MatMulTests.RandomFloats(rng, length);
        var gate2 = (float[])gate1.Clone();
        Reference.SiluMultiply(gate1, up);
        Optimized.SiluMultiply(gate2, up);
        AssertClose(gate1, gate2, 1e-5f);
    }

    [Fact]
    public void SiluMultiply_HandComputed_MatchesBothKernels()
    {
        foreach (var k in new IKernels[] { Reference, Optimized })
        {
            // silu(1) × 2 = 2 / (1 + e⁻¹) = 1.46211715726…; silu(0) = 0; silu(−100) ≈ −3.7e−42 → 0 after × 1.
            float[] gate = [1f, 0f, -100f];
            k.SiluMultiply(gate, [2f, 5f, 1f]);
            Assert.Equal(1.4621171572600098, gate[0], 1e-6);
            Assert.Equal(0f, gate[1]);
            Assert.Equal(0.0, gate[2], 1e-30);
        }
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var scale = Math.Max(1f, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * scale, $"[{i}]: expected {expected[i]}, got {actual[i]}");
        }
    }
}
