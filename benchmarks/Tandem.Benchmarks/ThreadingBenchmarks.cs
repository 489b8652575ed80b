using BenchmarkDotNet.Attributes;
using Tandem.Engine.Kernels;
using Tandem.Engine.Tensors;

namespace Tandem.Benchmarks;

/// <summary>
/// Dedicated worker pool vs Parallel.For for the decode-sized MatMuls that dominate a small model's step
/// (two threads, threshold 0 so even the small matrix is split). The result picks <see cref="ParallelMode"/>'s default.
/// </summary>
[MemoryDiagnoser]
#pragma warning disable CA1001 // BenchmarkDotNet releases the kernels and weights in [GlobalCleanup]
public class ThreadingBenchmarks
{
    private NativeTensorBuffer? _weights;
    private float[] _input = [];
    private float[] _output = [];
    private OptimizedKernels? _kernels;

    [Params(nameof(ParallelMode.WorkerPool), nameof(ParallelMode.ParallelFor))]
    public string Mode { get; set; } = nameof(ParallelMode.WorkerPool);

    [Params(256, 768)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var values = new float[Size * Size];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (i % 17) * 0.01f;
        }
        _weights = NativeTensorBuffer.FromFloats("w", TensorType.F32, Size, Size, values);
        _input = new float[Size];
        _output = new float[Size];
        _kernels = new OptimizedKernels(2, parallelThreshold: 0, mode: Enum.Parse<ParallelMode>(Mode));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _kernels?.Dispose();
        _weights?.Dispose();
    }

    [Benchmark]
    public void MatMulDecode() => _kernels!.MatMul(_weights!.Tensor, _input, _output, 1);
}
#pragma warning restore CA1001
