using BenchmarkDotNet.Attributes;
using Tandem.Engine.Kernels;
using Tandem.Engine.Tensors;

namespace Tandem.Benchmarks;

/// <summary>A weight matrix shape [Rows, Cols] (output × input features).</summary>
public sealed record MatMulShape(int Rows, int Cols)
{
    public override string ToString() => $"{Rows}x{Cols}";
}

/// <summary>
/// MatMul of the 110m preset's shapes (attention 768×768, FFN up/gate 2048×768, FFN down 768×2048) for every weight type,
/// decode (N = 1) and prefill (N = 16). The kernels are the benchmark methods so that the reference one can be the baseline.
/// Example: <c>dotnet run -c Release --project benchmarks/Tandem.Benchmarks -- --filter '*MatMul*' --job short</c>.
/// </summary>
[MemoryDiagnoser]
#pragma warning disable CA1001 // BenchmarkDotNet releases the kernels and weights in [GlobalCleanup]
public class MatMulBenchmarks
{
    private NativeTensorBuffer? _weights;
    private float[] _input = [];
    private float[] _output = [];
    private OptimizedKernels? _one;
    private OptimizedKernels? _two;

    public static IEnumerable<TensorType> Types => [TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q8_0];

    public static IEnumerable<MatMulShape> Shapes => [new(768, 768), new(2048, 768), new(768, 2048)];

    [ParamsSource(nameof(Types))]
    public TensorType Type { get; set; }

    [ParamsSource(nameof(Shapes))]
    public MatMulShape Shape { get; set; } = new(768, 768);

    [Params(1, 16)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        var values = new float[Shape.Rows * Shape.Cols];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((rng.NextDouble() * 2) - 1) * 0.05f;
        }
        _weights = NativeTensorBuffer.FromFloats("w", Type, Shape.Rows, Shape.Cols, values);
        _input = new float[N * Shape.Cols];
        for (var i = 0; i < _input.Length; i++)
        {
            _input[i] = (float)((rng.NextDouble() * 2) - 1);
        }
        _output = new float[N * Shape.Rows];
        _one = new OptimizedKernels(1);
        _two = new OptimizedKernels(2);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _one?.Dispose();
        _two?.Dispose();
        _weights?.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void Reference() => KernelSet.Reference.MatMul(_weights!.Tensor, _input, _output, N);

    [Benchmark]
    public void Optimized1Thread() => _one!.MatMul(_weights!.Tensor, _input, _output, N);

    [Benchmark]
    public void Optimized2Threads() => _two!.MatMul(_weights!.Tensor, _input, _output, N);
}
#pragma warning restore CA1001
