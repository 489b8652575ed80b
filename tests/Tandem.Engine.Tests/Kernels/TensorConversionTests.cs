using System.Runtime.InteropServices;
using Tandem.Engine.Kernels;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Kernels;

public class TensorConversionTests
{
    [Fact]
    public void QuantizeF16_RepresentableValues_RoundTripExactly()
    {
        var rng = new Random(1);
        var halves = new Half[1000];
        for (var i = 0; i < halves.Length; i++)
        {
            Half h;
            do
            {
                h = BitConverter.UInt16BitsToHalf((ushort)rng.Next(0, 65536));
            }
            while (Half.IsNaN(h));
            halves[i] = h;
        }
        var floats = halves.Select(h => (float)h).ToArray();
        var bytes = TensorConversion.Quantize(TensorType.F16, floats);
        Assert.Equal(halves, MemoryMarshal.Cast<byte, Half>(bytes).ToArray());
        var back = new float[floats.Length];
        TensorConversion.Dequantize(TensorType.F16, bytes, back);
        Assert.Equal(floats, back);
    }

    [Fact]
    public unsafe void RowDecoderF16_AllBitPatterns_MatchScalarConversion()
    {
        var bits = new ushort[65536];
        for (var i = 0; i < bits.Length; i++)
        {
            bits[i] = (ushort)i;
        }
        var decoded = new float[bits.Length];
        fixed (ushort* src = bits)
        fixed (float* dst = decoded)
        {
            RowDecoder.Decode(TensorType.F16, (byte*)src, dst, bits.Length);
        }
        for (var i = 0; i < bits.Length; i++)
        {
            var expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            if (float.IsNaN(expected))
            {
                Assert.True(float.IsNaN(decoded[i]), $"0x{i:X4} should decode to NaN");
            }
            else
            {
                Assert.Equal(BitConverter.SingleToUInt32Bits(expected), BitConverter.SingleToUInt32Bits(decoded[i]));
            }
        }
    }

    [Fact]
    public void QuantizeBF16_RepresentableValues_RoundTripExactly()
    {
        var rng = new Random(2);
        var floats = new float[1003];
        for (var i = 0; i < floats.Length; i++)
        {
            float f;
            do
            {
                f = BitConverter.UInt32BitsToSingle((uint)rng.Next(0, 65536) << 16);
            }
            while (float.IsNaN(f));
            floats[i] = f;
        }
        var bytes = TensorConversion.Quantize(TensorType.BF16, floats);
        var back = new float[floats.Length];
        TensorConversion.Dequantize(TensorType.BF16, bytes, back);
        Assert.Equal(floats, back);
    }

    [Theory]
    [InlineData(1f + (1f / 256), 1f)] // halfway, rounds to the even mantissa 0
    [InlineData(1f + (3f / 256), 1f + (1f / 64))] // halfway, rounds up to the even mantissa 2
    [InlineData(1f + (1.5f / 256), 1f + (1f / 128))] // above halfway rounds up
    [InlineData(-2.0f, -2.0f)]
    [InlineData(float.PositiveInfinity, float.PositiveInfinity)]
    public void QuantizeBF16_RoundsToNearestEven(float input, float expected)
    {
        Assert.Equal(expected, TensorConversion.FromBFloat16(TensorConversion.ToBFloat16(input)));
        // The vectorised path (8 at a time) agrees with the scalar one.
        var many = Enumerable.Repeat(input, 11).ToArray();
        var back = new float[11];
        TensorConversion.Dequantize(TensorType.BF16, TensorConversion.Quantize(TensorType.BF16, many), back);
        Assert.All(back, v => Assert.Equal(expected, v));
    }

    [Fact]
    public void QuantizeBF16_NaN_StaysNaN() =>
        Assert.True(float.IsNaN(TensorConversion.FromBFloat16(TensorConversion.ToBFloat16(float.NaN))));

    [Fact]
    public void QuantizeQ8_0_RandomValues_ErrorWithinHalfStep()
    {
        var rng = new Random(3);
        var values = new float[32 * 20];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((rng.NextDouble() * 2) - 1) * (1 + (i / 32));
        }
        var bytes = TensorConversion.Quantize(TensorType.Q8_0, values);
        Assert.Equal(34 * 20, bytes.Length);
        var back = new float[values.Length];
        TensorConversion.Dequantize(TensorType.Q8_0, bytes, back);
        for (var b = 0; b < 20; b++)
        {
            var amax = values.AsSpan(b * 32, 32).ToArray().Max(MathF.Abs);
            var d = amax / 127f;
            var storedD = (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(bytes.AsSpan(b * 34)));
            // q = round(x/d) is within d/2; the scale is stored as f16, which moves q × d by at most 127 × |d − d_f16|.
            var bound = (0.5 * d) + (127 * Math.Abs(d - storedD)) + 1e-7;
            for (var j = 0; j < 32; j++)
            {
                var i = (b * 32) + j;
                Assert.True(Math.Abs(values[i] - back[i]) <= bound, $"element {i}: {values[i]} → {back[i]}, bound {bound}");
            }
        }
    }

    [Fact]
    public void QuantizeQ8_0_IntegersWithAmax127_AreExact()
    {
        var values = Enumerable.Range(0, 32).Select(i => (float)(i * 8) - 121f).ToArray(); // -121 … 127
        var bytes = TensorConversion.Quantize(TensorType.Q8_0, values);
        Assert.Equal(1f, (float)BitConverter.UInt16BitsToHalf(MemoryMarshal.Read<ushort>(bytes)));
        Assert.Equal(-121, (sbyte)bytes[2]);
        Assert.Equal(127, (sbyte)bytes[33]);
        var back = new float[32];
        TensorConversion.Dequantize(TensorType.Q8_0, bytes, back);
        Assert.Equal(values, back);
    }

    [Fact]
    public void QuantizeQ8_0_AllZeros_GivesZeroScale()
    {
        var bytes = TensorConversion.Quantize(TensorType.Q8_0, new float[32]);
        Assert.All(bytes, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(TensorType.F32)]
    [InlineData(TensorType.F16)]
    [InlineData(TensorType.BF16)]
    [InlineData(TensorType.Q8_0)]
    public void ToFloat_SmallTensor_MatchesPerRowDequantize(TensorType type)
    {
        var values = Enumerable.Range(0, 2 * 64).Select(i => (i % 7) - 3f).ToArray();
        using var buffer = NativeTensorBuffer.FromFloats("t", type, 2, 64, values);
        var all = TensorConversion.ToFloat(buffer.Tensor);
        // Small integers are exact in the float encodings; Q8_0 (d = 3/127) is within d/2 plus the f16 rounding of d.
        var tolerance = type == TensorType.Q8_0 ? (0.5f * 3f / 127f) + (3f / 2048) : 0f;
        Assert.All(values.Zip(all), p => Assert.InRange(p.Second, p.First - tolerance, p.First + tolerance));
        var row = new float[64];
        TensorConversion.DequantizeRow(buffer.Tensor, 1, row);
        Assert.Equal(all[64..], row);
    }

    [Fact]
    public void Dequantize_PartialQ8Block_Throws() =>
        Assert.Throws<ArgumentException>(() => TensorConversion.Dequantize(TensorType.Q8_0, new byte[34], new float[31]));
}
