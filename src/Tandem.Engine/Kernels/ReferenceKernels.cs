using Tandem.Engine.Tensors;

namespace Tandem.Engine.Kernels;

/// <summary>
/// The specification: plain scalar loops with double accumulators, one element decoded at a time
/// straight from the encoding's definition. Slow on purpose; <see cref="OptimizedKernels"/> is tested against it.
/// </summary>
internal sealed unsafe class ReferenceKernels : IKernels
{
    public static ReferenceKernels Instance { get; } = new();

    public string Name => "reference";

    public void MatMul(WeightTensor w, ReadOnlySpan<float> input, Span<float> output, int n)
    {
        KernelChecks.MatMul(w, input, output, n);
        for (var j = 0; j < n; j++)
        {
            var x = input.Slice(j * w.Cols, w.Cols);
            for (var r = 0; r < w.Rows; r++)
            {
                var row = w.Data + (r * w.RowBytes);
                double sum = 0;
                for (var c = 0; c < w.Cols; c++)
                {
                    sum += (double)Element(w.Type, row, c) * x[c];
                }
                output[(j * w.Rows) + r] = (float)sum;
            }
        }
    }

    /// <summary>Element <paramref name="col"/> of a row, by definition of the encoding.</summary>
    internal static float Element(TensorType type, byte* row, int col) => type switch
    {
        TensorType.F32 => ((float*)row)[col],
        TensorType.F16 => (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[col]),
        TensorType.BF16 => BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[col] << 16),
        TensorType.Q8_0 => (float)BitConverter.UInt16BitsToHalf(*(ushort*)(row + (col / 32 * 34))) * ((sbyte*)row)[(col / 32 * 34) + 2 + (col % 32)],
        _ => throw new NotSupportedException($"tensor type {type} is not supported"),
    };

    public void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> output)
    {
        KernelChecks.SameLength(x, weight, output);
        double ss = 0;
        foreach (var v in x)
        {
            ss += (double)v * v;
        }
        var scale = 1.0 / Math.Sqrt((ss / x.Length) + eps);
        for (var i = 0; i < x.Length; i++)
        {
            output[i] = (float)(x[i] * scale * weight[i]);
        }
    }

    public void Softmax(Span<float> x)
    {
        if (x.IsEmpty)
        {
            return;
        }
        var max = float.NegativeInfinity;
        foreach (var v in x)
        {
            max = Math.Max(max, v);
        }
        double sum = 0;
        for (var i = 0; i < x.Length; i++)
        {
            sum += Math.Exp(x[i] - max);
        }
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = (float)(Math.Exp(x[i] - max) / sum);
        }
    }

    public float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        KernelChecks.SameLength(a, b);
        double sum = 0;
        for (var i = 0; i < a.Length; i++)
        {
            sum += (double)a[i] * b[i];
        }
        return (float)sum;
    }

    public void MultiplyAdd(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        KernelChecks.SameLength(x, y);
        for (var i = 0; i < x.Length; i++)
        {
            y[i] = (float)(y[i] + ((double)a * x[i]));
        }
    }

    public void SiluMultiply(Span<float> gate, ReadOnlySpan<float> up)
    {
        KernelChecks.SameLength(gate, up);
        for (var i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            gate[i] = (float)(g / (1.0 + Math.Exp(-g)) * up[i]);
        }
    }

    public void ParallelFor(int count, Action<int, int> body, int grain = 1)
    {
        KernelChecks.ParallelFor(count, body, grain);
        for (var start = 0; start < count; start += grain)
        {
            body(start, Math.Min(count, start + grain));
        }
    }
}

/// <summary>Argument validation shared by the kernel sets.</summary>
internal static class KernelChecks
{
    public static void MatMul(WeightTensor w, ReadOnlySpan<float> input, Span<float> output, int n)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (!TensorTypes.IsKnown(w.Type))
        {
            throw new NotSupportedException($"tensor '{w.Name}': type {w.Type} is not supported");
        }
        if (input.Length < (long)n * w.Cols)
        {
            throw new ArgumentException($"input holds {input.Length} floats, {n} × {w.Cols} needed for '{w.Name}'", nameof(input));
        }
        if (output.Length < (long)n * w.Rows)
        {
            throw new ArgumentException($"output holds {output.Length} floats, {n} × {w.Rows} needed for '{w.Name}'", nameof(output));
        }
    }

    public static void ParallelFor(int count, Action<int, int> body, int grain)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfLessThan(grain, 1);
    }

    public static void SameLength(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"length mismatch: {a.Length} vs {b.Length}");
        }
    }

    public static void SameLength(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c)
    {
        if (a.Length != b.Length || a.Length != c.Length)
        {
            throw new ArgumentException($"length mismatch: {a.Length}, {b.Length}, {c.Length}");
        }
    }
}
