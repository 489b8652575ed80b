using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Formats;

public class GgufWriterTests
{
    [Fact]
    public void Write_AllMetadataTypes_RoundTripWithClrTypes()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "meta.gguf");
        var values = new Dictionary<string, object>
        {
            ["u8"] = (byte)200,
            ["i8"] = (sbyte)-5,
            ["u16"] = (ushort)60000,
            ["i16"] = (short)-30000,
            ["u32"] = 4000000000u,
            ["i32"] = -2000000000,
            ["f32"] = 1.5f,
            ["bool"] = true,
            ["str"] = "héllo ✓",
            ["u64"] = ulong.MaxValue,
            ["i64"] = long.MinValue,
            ["f64"] = Math.PI,
            ["a.u8"] = new byte[] { 1, 2, 255 },
            ["a.i8"] = new sbyte[] { -1, 2 },
            ["a.u16"] = new ushort[] { 1, 65535 },
            ["a.i16"] = new short[] { -1, 300 },
            ["a.u32"] = new uint[] { 7, uint.MaxValue },
            ["a.i32"] = new[] { -7, 9 },
            ["a.f32"] = new[] { 0.25f, -1f },
            ["a.bool"] = new[] { true, false, true },
            ["a.str"] = new[] { "a", "", "ccc" },
            ["a.u64"] = new ulong[] { 1, ulong.MaxValue },
            ["a.i64"] = new long[] { -1, long.MaxValue },
            ["a.f64"] = new[] { 1e300, -2.5 },
            ["a.empty"] = Array.Empty<int>(),
            ["a.nested"] = new object[] { new[] { 1, 2 }, new[] { "x" }, new object[] { new[] { 3.5f } } },
        };
        var w = new GgufWriter();
        foreach (var (k, v) in values)
        {
            w.AddMetadata(k, v);
        }
        w.Write(path);

        using var gguf = GgufFile.Open(path);
        Assert.Equal(3, gguf.Version);
        Assert.Empty(gguf.Tensors);
        Assert.Equal(values.Count, gguf.Metadata.Count);
        foreach (var (k, v) in values)
        {
            var actual = gguf.Metadata[k];
            Assert.IsType(v.GetType(), actual);
            if (k == "a.nested")
            {
                var nested = (object[])actual;
                Assert.Equal([1, 2], (int[])nested[0]);
                Assert.Equal(["x"], (string[])nested[1]);
                Assert.Equal([3.5f], (float[])((object[])nested[2])[0]);
            }
            else
            {
                Assert.Equal(v, actual);
            }
        }
        Assert.True(gguf.TryGetInt("u16", out var u16));
        Assert.Equal(60000, u16);
        Assert.True(gguf.TryGetInt("i8", out var i8));
        Assert.Equal(-5, i8);
        Assert.False(gguf.TryGetInt("u64", out _)); // above long.MaxValue
        Assert.False(gguf.TryGetInt("str", out _));
        Assert.True(gguf.TryGetFloat("f32", out var f32));
        Assert.Equal(1.5, f32);
        Assert.True(gguf.TryGetFloat("f64", out var f64));
        Assert.Equal(Math.PI, f64);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public unsafe void Write_AllTensorTypes_RoundTripExactBytes(int alignment)
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "t.gguf");
        var rng = new Random(42);
        byte[] Bytes(int n)
        {
            var b = new byte[n];
            rng.NextBytes(b);
            return b;
        }
        var tensors = new (string Name, TensorType Type, long[] Shape, byte[] Data)[]
        {
            ("f32", TensorType.F32, [3, 5], Bytes(60)),
            ("f16", TensorType.F16, [7], Bytes(14)),
            ("bf16", TensorType.BF16, [2, 3, 2], Bytes(24)),
            ("q8", TensorType.Q8_0, [3, 64], Bytes(3 * 2 * 34)),
        };
        var w = new GgufWriter(alignment);
        w.AddMetadata("general.architecture", "llama");
        foreach (var t in tensors)
        {
            w.AddTensor(t.Name, t.Type, t.Shape, t.Data);
        }
        w.Write(path);

        using var gguf = GgufFile.Open(path);
        Assert.Equal(alignment, gguf.Alignment);
        Assert.Equal(0, gguf.DataOffset % alignment);
        Assert.Equal(tensors.Length, gguf.Tensors.Count);
        for (var i = 0; i < tensors.Length; i++)
        {
            var (name, type, shape, data) = tensors[i];
            var t = gguf.Tensors[i];
            Assert.Equal(name, t.Name);
            Assert.Equal(type, t.Type);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(data, new ReadOnlySpan<byte>(t.Data, (int)t.ByteLength).ToArray());
            Assert.Equal(0, (t.Data - (byte*)0 - gguf.DataOffset) % alignment);
        }
        Assert.Equal(3, gguf.Tensors[3].Rows);
        Assert.Equal(68, gguf.Tensors[3].RowBytes);
    }

    [Fact]
    public void AddTensor_WrongByteCount_Throws()
    {
        var w = new GgufWriter();
        Assert.Throws<ArgumentException>(() => w.AddTensor("x", TensorType.F32, [4], new byte[15]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("q", TensorType.Q8_0, [16], new byte[17]));
    }

    [Fact]
    public void Open_Version2File_ParsesLikeVersion3()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "v2.gguf");
        new TinyModel().ToGguf().Write(path);
        var bytes = File.ReadAllBytes(path);
        bytes[4] = 2; // v2 shares v3's layout (64-bit counts and lengths)
        File.WriteAllBytes(path, bytes);
        using var gguf = GgufFile.Open(path);
        Assert.Equal(2, gguf.Version);
        Assert.Equal([32L, 8L], gguf.TryGetTensor("token_embd.weight")!.Shape);
        Assert.True(gguf.TryGetInt("llama.block_count", out var layers));
        Assert.Equal(TinyModel.Layers, layers);
    }
}
