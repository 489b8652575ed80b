using System.Runtime.InteropServices;

namespace Tandem.Engine.Tensors;

/// <summary>
/// Owns 64-byte aligned native memory holding one tensor, for tests, benchmarks and converted weights.
/// The <see cref="Tensor"/> must not be used after <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class NativeTensorBuffer : IDisposable
{
    private byte* _data;

    private NativeTensorBuffer(string name, TensorType type, long[] shape, long byteLength)
    {
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(byteLength, 1), 64);
        Tensor = new WeightTensor(name, type, shape, _data, byteLength);
    }

    public WeightTensor Tensor { get; }

    public Span<byte> Bytes => _data == null ? throw new ObjectDisposedException(nameof(NativeTensorBuffer)) : new(_data, checked((int)Tensor.ByteLength));

    /// <summary>Zero-filled tensor of the given type and shape.</summary>
    public static NativeTensorBuffer Allocate(string name, TensorType type, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (var d in shape)
        {
            count = checked(count * d);
        }
        var bytes = TensorTypes.ByteSize(type, count);
        if (bytes < 0)
        {
            throw new ArgumentException($"{count} elements are not a whole number of {type} blocks", nameof(shape));
        }
        var buffer = new NativeTensorBuffer(name, type, shape, bytes);
        buffer.Bytes.Clear();
        return buffer;
    }

    /// <summary>A [rows, cols] tensor of <paramref name="type"/> encoding <paramref name="values"/> (row-major, rows × cols floats).</summary>
    public static NativeTensorBuffer FromFloats(string name, TensorType type, int rows, int cols, ReadOnlySpan<float> values)
    {
        if (values.Length != checked(rows * cols))
        {
            throw new ArgumentException($"expected {rows * cols} values, got {values.Length}", nameof(values));
        }
        var buffer = Allocate(name, type, rows, cols);
        var rowBytes = (int)buffer.Tensor.RowBytes;
        for (var r = 0; r < rows; r++)
        {
            TensorConversion.Quantize(type, values.Slice(r * cols, cols), buffer.Bytes.Slice(r * rowBytes, rowBytes));
        }
        return buffer;
    }

    public void Dispose()
    {
        if (_data != null)
        {
            NativeMemory.AlignedFree(_data);
            _data = null;
        }
    }
}
