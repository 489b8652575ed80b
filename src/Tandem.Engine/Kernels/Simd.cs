using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Kernels;

/// <summary>
/// Which vector width the optimized code paths use. The fields are static readonly, so the JIT folds
/// the branches away: AVX-512 (16 floats), else AVX2 + FMA (8 floats), else scalar.
/// </summary>
internal static class Simd
{
    public static readonly bool Use512 = Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported;
    public static readonly bool Use256 = !Use512 && Avx2.IsSupported && Fma.IsSupported;

    public static string Describe => Use512 ? "avx512" : Use256 ? "avx2+fma" : "scalar";
}

/// <summary>Decodes elements of one weight row in registers. Implementations are structs so the JIT specialises every kernel per type.</summary>
internal unsafe interface IWeightLoader
{
    static abstract TensorType Type { get; }

    /// <summary>16 elements starting at <paramref name="col"/> (a multiple of 16).</summary>
    static abstract Vector512<float> Load512(byte* row, int col);

    /// <summary>8 elements starting at <paramref name="col"/> (a multiple of 8).</summary>
    static abstract Vector256<float> Load256(byte* row, int col);

    static abstract float LoadScalar(byte* row, int col);
}

internal readonly unsafe struct F32Loader : IWeightLoader
{
    public static TensorType Type => TensorType.F32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int col) => Vector512.Load((float*)row + col);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int col) => Vector256.Load((float*)row + col);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* row, int col) => ((float*)row)[col];
}

internal readonly unsafe struct F16Loader : IWeightLoader
{
    public static TensorType Type => TensorType.F16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int col) => HalfConvert.ToSingle512(Vector256.Load((ushort*)row + col));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int col) => HalfConvert.ToSingle256(Vector128.Load((ushort*)row + col));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* row, int col) => (float)BitConverter.UInt16BitsToHalf(((ushort*)row)[col]);
}

internal readonly unsafe struct BF16Loader : IWeightLoader
{
    public static TensorType Type => TensorType.BF16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int col) =>
        (Vector512.WidenLower(Vector256.Load((ushort*)row + col).ToVector512Unsafe()) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int col) =>
        (Vector256.WidenLower(Vector128.Load((ushort*)row + col).ToVector256Unsafe()) << 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* row, int col) => BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[col] << 16);
}

/// <summary>GGML Q8_0: blocks of 34 bytes = f16 scale d + 32 × int8 q; value = d × q.</summary>
internal readonly unsafe struct Q8Loader : IWeightLoader
{
    public const int BlockElements = 32;
    public const int BlockBytes = 34;

    public static TensorType Type => TensorType.Q8_0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int col)
    {
        var block = row + ((col >> 5) * BlockBytes);
        var d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)block);
        var q = Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 2 + (col & 31)));
        return Avx512F.ConvertToVector512Single(q) * d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int col)
    {
        var block = row + ((col >> 5) * BlockBytes);
        var d = (float)BitConverter.UInt16BitsToHalf(*(ushort*)block);
        var q = Avx2.ConvertToVector256Int32((sbyte*)block + 2 + (col & 31));
        return Avx.ConvertToVector256Single(q) * d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float LoadScalar(byte* row, int col)
    {
        var block = row + ((col >> 5) * BlockBytes);
        return (float)BitConverter.UInt16BitsToHalf(*(ushort*)block) * ((sbyte*)block)[2 + (col & 31)];
    }
}

/// <summary>IEEE half → single in registers (no F16C intrinsics are exposed by .NET): exact for all inputs incl. subnormals, ±inf and NaN.</summary>
internal static class HalfConvert
{
    private const uint ExpMantMask = 0x7FFF;
    private const uint InfNanThreshold = 0x7C00u << 13;
    private const uint SingleExpMask = 0x7F800000;
    private static readonly float Magic = BitConverter.UInt32BitsToSingle(0x77800000); // 2^112 = 2^(127-15)

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ToSingle512(Vector256<ushort> h)
    {
        var v = Vector512.WidenLower(h.ToVector512Unsafe());
        var em = (v & Vector512.Create(ExpMantMask)) << 13;
        var f = (em.AsSingle() * Vector512.Create(Magic)).AsUInt32();
        var infNan = Vector512.GreaterThanOrEqual(em, Vector512.Create(InfNanThreshold)) & Vector512.Create(SingleExpMask);
        var sign = (v & Vector512.Create(0x8000u)) << 16;
        return (f | infNan | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ToSingle256(Vector128<ushort> h)
    {
        var v = Vector256.WidenLower(h.ToVector256Unsafe());
        var em = (v & Vector256.Create(ExpMantMask)) << 13;
        var f = (em.AsSingle() * Vector256.Create(Magic)).AsUInt32();
        var infNan = Vector256.GreaterThanOrEqual(em, Vector256.Create(InfNanThreshold)) & Vector256.Create(SingleExpMask);
        var sign = (v & Vector256.Create(0x8000u)) << 16;
        return (f | infNan | sign).AsSingle();
    }
}

/// <summary>Vectorised decoding of whole rows (or row prefixes) into floats.</summary>
internal static unsafe class RowDecoder
{
    public static void Decode(TensorType type, byte* src, float* dst, int count)
    {
        switch (type)
        {
            case TensorType.F32:
                Buffer.MemoryCopy(src, dst, (long)count * sizeof(float), (long)count * sizeof(float));
                break;
            case TensorType.F16:
                Decode<F16Loader>(src, dst, count);
                break;
            case TensorType.BF16:
                Decode<BF16Loader>(src, dst, count);
                break;
            case TensorType.Q8_0:
                Decode<Q8Loader>(src, dst, count);
                break;
            default:
                throw new NotSupportedException($"tensor type {type} is not supported");
        }
    }

    public static void Decode<TL>(byte* src, float* dst, int count)
        where TL : IWeightLoader
    {
        var i = 0;
        if (Simd.Use512)
        {
            for (; i <= count - 16; i += 16)
            {
                TL.Load512(src, i).Store(dst + i);
            }
        }
        else if (Simd.Use256)
        {
            for (; i <= count - 8; i += 8)
            {
                TL.Load256(src, i).Store(dst + i);
            }
        }
        for (; i < count; i++)
        {
            dst[i] = TL.LoadScalar(src, i);
        }
    }
}
