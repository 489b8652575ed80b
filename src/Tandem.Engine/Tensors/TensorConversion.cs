using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Tandem.Engine.Kernels;

namespace Tandem.Engine.Tensors;

/// <summary>
/// Conversions between the weight encodings (<see cref="TensorType"/>) and <see cref="float"/>.
/// Decoding is vectorised; encoding follows the GGML reference (F16: IEEE round-to-nearest-even,
/// BF16: round-to-nearest-even on the upper 16 bits, Q8_0: d = amax / 127, q = round(x / d) away from zero).
/// </summary>
public static unsafe class TensorConversion
{
    /// <summary>Decodes destination.Length elements of <paramref name="type"/> from <paramref name="source"/> into <paramref name="destination"/>.</summary>
    /// <remarks>For Q8_0, <paramref name="source"/> must start at a block boundary.</remarks>
    public static void Dequantize(TensorType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        var count = destination.Length;
        var needed = TensorTypes.ByteSize(type, count);
        if (needed < 0)
        {
            throw new ArgumentException($"{count} elements are not a whole number of {type} blocks", nameof(destination));
        }
        if (source.Length < needed)
        {
            throw new ArgumentException($"{count} {type} elements need {needed} bytes, got {source.Length}", nameof(source));
        }
        if (type == TensorType.F16)
        {
            TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source)[..count], destination);
            return;
        }
        fixed (byte* src = source)
        fixed (float* dst = destination)
        {
            RowDecoder.Decode(type, src, dst, count);
        }
    }

    /// <summary>Decodes row <paramref name="row"/> of <paramref name="tensor"/> into <paramref name="destination"/> (length ≥ Cols).</summary>
    public static void DequantizeRow(WeightTensor tensor, int row, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (destination.Length < tensor.Cols)
        {
            throw new ArgumentException($"destination holds {destination.Length} elements, row has {tensor.Cols}", nameof(destination));
        }
        Dequantize(tensor.Type, tensor.Row(row), destination[..tensor.Cols]);
    }

    /// <summary>All elements of a (small) tensor as floats: norm weights, biases. Allocates.</summary>
    public static float[] ToFloat(WeightTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var result = new float[checked((int)tensor.ElementCount)];
        for (var r = 0; r < tensor.Rows; r++)
        {
            Dequantize(tensor.Type, tensor.Row(r), result.AsSpan(r * tensor.Cols, tensor.Cols));
        }
        return result;
    }

    /// <summary>Encodes <paramref name="source"/> as <paramref name="type"/> into <paramref name="destination"/> (exactly ByteSize bytes used).</summary>
    public static void Quantize(TensorType type, ReadOnlySpan<float> source, Span<byte> destination)
    {
        var needed = TensorTypes.ByteSize(type, source.Length);
        if (needed < 0)
        {
            throw new ArgumentException($"{source.Length} elements are not a whole number of {type} blocks", nameof(source));
        }
        if (destination.Length < needed)
        {
            throw new ArgumentException($"{source.Length} {type} elements need {needed} bytes, got {destination.Length}", nameof(destination));
        }
        switch (type)
        {
            case TensorType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            case TensorType.F16:
                TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<byte, Half>(destination)[..source.Length]);
                break;
            case TensorType.BF16:
                QuantizeBF16(source, MemoryMarshal.Cast<byte, ushort>(destination)[..source.Length]);
                break;
            case TensorType.Q8_0:
                QuantizeQ8_0(source, destination);
                break;
            default:
                throw new NotSupportedException($"tensor type {type} is not supported");
        }
    }

    /// <summary>Encodes <paramref name="source"/> as a new byte array of <paramref name="type"/>.</summary>
    public static byte[] Quantize(TensorType type, ReadOnlySpan<float> source)
    {
        var size = TensorTypes.ByteSize(type, source.Length);
        if (size < 0)
        {
            throw new ArgumentException($"{source.Length} elements are not a whole number of {type} blocks", nameof(source));
        }
        var bytes = new byte[size];
        Quantize(type, source, bytes);
        return bytes;
    }

    /// <summary>float → bfloat16 with round-to-nearest-even; NaN stays a (quiet) NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x40);
        }
        bits += 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }

    public static float FromBFloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    private static void QuantizeBF16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var src = MemoryMarshal.Cast<float, uint>(source);
            for (; i <= source.Length - 8; i += 8)
            {
                var bits = Vector256.Create(src.Slice(i, 8));
                var nan = ~Vector256.Equals(Vector256.Create(source.Slice(i, 8)), Vector256.Create(source.Slice(i, 8))).AsUInt32();
                var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
                var quiet = (bits >> 16) | Vector256.Create(0x40u);
                var result = Vector256.ConditionalSelect(nan, quiet, rounded);
                var narrowed = Vector128.Narrow(result.GetLower(), result.GetUpper());
                narrowed.CopyTo(destination.Slice(i, 8));
            }
        }
        for (; i < source.Length; i++)
        {
            destination[i] = ToBFloat16(source[i]);
        }
    }

    private static void QuantizeQ8_0(ReadOnlySpan<float> source, Span<byte> destination)
    {
        const int Qk = 32;
        for (int b = 0, blocks = source.Length / Qk; b < blocks; b++)
        {
            var x = source.Slice(b * Qk, Qk);
            var block = destination.Slice(b * 34, 34);
            var amax = TensorPrimitives.MaxMagnitude(x);
            amax = MathF.Abs(amax);
            var d = amax / 127f;
            var id = d != 0 ? 1f / d : 0f;
            MemoryMarshal.Write(block, BitConverter.HalfToUInt16Bits((Half)d));
            for (var j = 0; j < Qk; j++)
            {
                block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
            }
        }
    }
}
