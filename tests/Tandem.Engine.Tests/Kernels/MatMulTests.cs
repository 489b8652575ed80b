using Tandem.Engine.Kernels;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Kernels;

public class MatMulTests
{
    /// <summary>Optimized − reference, per output, must stay within this fraction of Σ|w·x| (float vs double accumulation).</summary>
    private const double RelativeTolerance = 1e-5;

    public static TheoryData<TensorType, int> TypesAndThreads()
    {
        var data = new TheoryData<TensorType, int>();
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q8_0 })
        {
            foreach (var threads in new[] { 1, 2, 3 })
            {
                data.Add(type, threads);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(TypesAndThreads))]
    public void MatMul_OptimizedVsReference_AgreeWithinTolerance(TensorType type, int threads)
    {
        int[] colsList = type == TensorType.Q8_0 ? [32, 96, 160] : [1, 3, 16, 67, 100, 160];
        int[] rowsList = [1, 3, 4, 5, 37, 300];
        int[] nList = [1, 2, 3, 17];
        // Threshold 0 forces the worker pool even for tiny shapes; the default exercises the inline path.
        using var pooled = new OptimizedKernels(threads, parallelThreshold: 0);
        using var inline = new OptimizedKernels(threads);
        var rng = new Random(((int)type * 10) + threads);
        foreach (var cols in colsList)
        {
            foreach (var rows in rowsList)
            {
                using var w = RandomTensor(rng, type, rows, cols);
                var absW = TensorConversion.ToFloat(w.Tensor).Select(MathF.Abs).ToArray();
                foreach (var n in nList)
                {
                    var input = RandomFloats(rng, n * cols);
                    var expected = new float[n * rows];
                    KernelSet.Reference.MatMul(w.Tensor, input, expected, n);
                    foreach (var kernels in new IKernels[] { pooled, inline })
                    {
                        var actual = new float[n * rows];
                        kernels.MatMul(w.Tensor, input, actual, n);
                        for (var j = 0; j < n; j++)
                        {
                            for (var r = 0; r < rows; r++)
                            {
                                double magnitude = 0;
                                for (var c = 0; c < cols; c++)
                                {
                                    magnitude += absW[(r * cols) + c] * Math.Abs(input[(j * cols) + c]);
                                }
                                var diff = Math.Abs(actual[(j * rows) + r] - expected[(j * rows) + r]);
                                Assert.True(
                                    diff <= (RelativeTolerance * magnitude) + 1e-30,
                                    $"{type} rows={rows} cols={cols} n={n} threads={threads} [{j},{r}]: {actual[(j * rows) + r]} vs {expected[(j * rows) + r]}");
                            }
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void MatMul_ReferenceTinyF32_MatchesHandComputedValues()
    {
        // w = [[1, 2, 3], [4, 5, 6]]; inputs [1, 0, -1] and [0.5, 1, 2].
        using var w = NativeTensorBuffer.FromFloats("w", TensorType.F32, 2, 3, [1, 2, 3, 4, 5, 6]);
        var output = new float[4];
        KernelSet.Reference.MatMul(w.Tensor, [1, 0, -1, 0.5f, 1, 2], output, 2);
        Assert.Equal([-2f, -2f, 8.5f, 19f], output);
        using var optimized = new OptimizedKernels(2, parallelThreshold: 0);
        optimized.MatMul(w.Tensor, [1, 0, -1, 0.5f, 1, 2], output, 2);
        Assert.Equal([-2f, -2f, 8.5f, 19f], output);
    }

    [Fact]
    public void MatMul_ReferenceTinyQ8_0_MatchesHandComputedValue()
    {
        // One block: d = 0.5, q[i] = i − 16 ⇒ Σ d·q·1 = 0.5 × (Σ i − 512) = 0.5 × (496 − 512) = −8.
        using var w = NativeTensorBuffer.Allocate("w", TensorType.Q8_0, 1, 32);
        BitConverter.TryWriteBytes(w.Bytes, BitConverter.HalfToUInt16Bits((Half)0.5f));
        for (var i = 0; i < 32; i++)
        {
            w.Bytes[2 + i] = (byte)(sbyte)(i - 16);
        }
        var input = Enumerable.Repeat(1f, 32).ToArray();
        var output = new float[1];
        KernelSet.Reference.MatMul(w.Tensor, input, output, 1);
        Assert.Equal(-8f, output[0]);
        using var optimized = new OptimizedKernels(1);
        optimized.MatMul(w.Tensor, input, output, 1);
        Assert.Equal(-8f, output[0]);
    }

    [Fact]
    public void MatMul_OutputTooSmall_Throws()
    {
        using var w = NativeTensorBuffer.Allocate("w", TensorType.F32, 4, 8);
        using var kernels = new OptimizedKernels(1);
        Assert.Throws<ArgumentException>(() => kernels.MatMul(w.Tensor, new float[16], new float[7], 2));
    }

    [Fact]
    public void MatMul_ConcurrentCallers_AllGetCorrectResults()
    {
        var rng = new Random(9);
        using var w = RandomTensor(rng, TensorType.F16, 256, 128);
        var input = RandomFloats(rng, 128 * 3);
        var expected = new float[3 * 256];
        KernelSet.Reference.MatMul(w.Tensor, input, expected, 3);
        using var kernels = new OptimizedKernels(2, parallelThreshold: 0);
        Parallel.For(0, 8, _ =>
        {
            var output = new float[3 * 256];
            for (var k = 0; k < 20; k++)
            {
                kernels.MatMul(w.Tensor, input, output, 3);
                for (var i = 0; i < output.Length; i++)
                {
                    Assert.True(Math.Abs(output[i] - expected[i]) <= 1e-3, $"{output[i]} vs {expected[i]}");
                }
            }
        });
    }

    internal static NativeTensorBuffer RandomTensor(Random rng, TensorType type, int rows, int cols) =>
        NativeTensorBuffer.FromFloats("w", type, rows, cols, RandomFloats(rng, rows * cols));

    internal static float[] RandomFloats(Random rng, int count)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (float)((rng.NextDouble() * 2) - 1);
        }
        return values;
    }
}
