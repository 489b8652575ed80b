using System.Text;
using Tandem.Engine.Formats.Gguf;
using Tandem.Engine.Models;

namespace Tandem.Engine.Tests.Formats;

/// <summary>Malformed and malicious GGUF files must fail with a <see cref="ModelFormatException"/> naming the file.</summary>
public class GgufHostileTests
{
    [Fact]
    public void Open_TruncatedStories260K_LoadsOrThrowsModelFormatException()
    {
        var original = File.ReadAllBytes(TestModels.Stories260K);
        long dataOffset;
        using (var g = GgufFile.Open(TestModels.Stories260K))
        {
            dataOffset = g.DataOffset;
        }
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "cut.gguf");
        var cuts = new SortedSet<int>();
        for (var i = 0; i < Math.Min(dataOffset, 2048); i++)
        {
            cuts.Add(i); // every offset through the header and the first metadata entries
        }
        for (var i = 2048L; i < dataOffset + 64; i += 53)
        {
            cuts.Add((int)i); // a spread through the rest of the metadata and tensor infos
        }
        for (var i = 0; i < 120; i++)
        {
            cuts.Add((int)(dataOffset + ((original.Length - dataOffset) * i / 120))); // through the tensor data
        }
        Assert.True(cuts.Count >= 200);
        var failures = 0;
        foreach (var cut in cuts)
        {
            if (!Attempt(path, original.AsSpan(0, cut)))
            {
                failures++;
            }
        }
        Assert.Equal(cuts.Count, failures); // a truncated file never loads
        Assert.True(Attempt(path, original)); // and the whole file does
    }

    [Fact]
    public void Open_RandomByteFlips_LoadsOrThrowsModelFormatException()
    {
        var original = File.ReadAllBytes(TestModels.Stories260K);
        long dataOffset;
        using (var g = GgufFile.Open(TestModels.Stories260K))
        {
            dataOffset = g.DataOffset;
        }
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "flip.gguf");
        var rng = new Random(12345);
        var buffer = new byte[original.Length];
        var rejected = 0;
        const int Trials = 400;
        for (var trial = 0; trial < Trials; trial++)
        {
            original.CopyTo(buffer, 0);
            var flips = rng.Next(1, 9);
            for (var f = 0; f < flips; f++)
            {
                var pos = rng.Next(10) switch
                {
                    < 3 => rng.Next(0, 64), // magic, version, counts, first key
                    < 9 => rng.Next(0, (int)dataOffset), // metadata and tensor infos
                    _ => rng.Next(0, buffer.Length),
                };
                buffer[pos] = rng.Next(4) switch
                {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => (byte)(buffer[pos] ^ (1 << rng.Next(8))),
                };
            }
            if (!Attempt(path, buffer))
            {
                rejected++;
            }
        }
        Assert.InRange(rejected, 1, Trials);
    }

    [Fact]
    public void Open_WrongMagic_Rejected() =>
        AssertRejected(Raw(w => w.Write(Encoding.ASCII.GetBytes("GGML\u0003\0\0\0"))), "bad magic");

    [Theory]
    [InlineData(1u, "version 1 is not supported")]
    [InlineData(99u, "unsupported GGUF version 99")]
    [InlineData(0u, "unsupported GGUF version 0")]
    public void Open_UnsupportedVersion_Rejected(uint version, string expected) =>
        AssertRejected(Raw(w => Header(w, 0, 0, version)), expected);

    [Fact]
    public void Open_HugeTensorCount_Rejected() =>
        AssertRejected(Raw(w => Header(w, 1UL << 60, 0)), "tensor count 1152921504606846976 cannot fit");

    [Fact]
    public void Open_HugeMetadataCount_Rejected() =>
        AssertRejected(Raw(w => Header(w, 0, ulong.MaxValue)), "metadata count");

    [Fact]
    public void Open_HugeStringLength_Rejected() =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 0, 1);
                w.Write(1UL << 62);
                w.Write(new byte[64]);
            }),
            "string length 4611686018427387904 exceeds");

    [Fact]
    public void Open_StringLongerThanFile_ReportsTruncation() =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 0, 1);
                w.Write(1000UL);
                w.Write(new byte[20]);
            }),
            "truncated: metadata key 0 needs a 1000-byte string");

    [Theory]
    [InlineData(1UL << 40, "array length 1099511627776 exceeds")]
    [InlineData(1000UL, "array of 1000 elements needs at least 4000 bytes")]
    public void Open_HugeArrayLength_Rejected(ulong count, string expected) =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 0, 1);
                Str(w, "arr");
                w.Write((uint)GgufValueType.Array);
                w.Write((uint)GgufValueType.UInt32);
                w.Write(count);
                w.Write(new byte[40]);
            }),
            expected);

    [Fact]
    public void Open_UnknownValueType_Rejected() =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 0, 1);
                Str(w, "k");
                w.Write(77u);
                w.Write(new byte[16]);
            }),
            "unknown metadata value type 77");

    [Fact]
    public void Open_DeeplyNestedArrays_Rejected() =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 0, 1);
                Str(w, "deep");
                w.Write((uint)GgufValueType.Array);
                for (var i = 0; i < 20; i++)
                {
                    w.Write((uint)GgufValueType.Array);
                    w.Write(1UL);
                }
                w.Write(new byte[64]);
            }),
            "nested deeper");

    [Fact]
    public void Open_ThousandDimensions_Rejected() =>
        AssertRejected(Raw(w => Tensor(w, "t", [4], 0, 0, nDims: 1000)), "tensor 't' has 1000 dimensions");

    [Fact]
    public void Open_ZeroDimension_Rejected() =>
        AssertRejected(Raw(w => Tensor(w, "t", [4, 0], 0, 0)), "tensor 't' has invalid dimension 1 of size 0");

    [Fact]
    public void Open_ElementCountOverflow_Rejected() =>
        AssertRejected(Raw(w => Tensor(w, "t", [1L << 30, 1L << 30, 1L << 30, 1L << 30], 0, 0)), "overflows");

    [Fact]
    public void Open_OffsetPastEnd_Rejected() =>
        AssertRejected(Raw(w => Tensor(w, "t", [4], 0, 1024)), "truncated: tensor 't' data [1024, 1040) lies outside");

    [Fact]
    public void Open_MisalignedOffset_Rejected() =>
        AssertRejected(Raw(w => Tensor(w, "t", [4], 0, 4)), "tensor 't' data offset 4 is not aligned to 32 bytes");

    [Theory]
    [InlineData(99u, "tensor 't' has unsupported type unknown type 99")]
    [InlineData(12u, "tensor 't' has unsupported type Q4_K (12)")]
    [InlineData(2u, "Q4_0 (2)")]
    public void Open_UnsupportedTensorType_NamesTensorAndType(uint type, string expected) =>
        AssertRejected(Raw(w => Tensor(w, "t", [32], type, 0)), expected);

    [Fact]
    public void Open_DuplicateTensorNames_Rejected() =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 2, 0);
                TensorInfo(w, "t", [4], 0, 0);
                TensorInfo(w, "t", [4], 0, 32);
                w.Write(new byte[128]);
            }),
            "tensor 't' appears twice");

    [Fact]
    public void Open_BadAlignment_Rejected() =>
        AssertRejected(
            Raw(w =>
            {
                Header(w, 0, 1);
                Str(w, "general.alignment");
                w.Write((uint)GgufValueType.UInt32);
                w.Write(24u);
            }),
            "general.alignment 24 is not a power of two");

    [Fact]
    public void Open_UnsupportedArchitecture_NamesIt()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "neox.gguf");
        new TinyModel().ToGguf("gpt-neox").Write(path);
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(path));
        Assert.Contains("unsupported architecture 'gpt-neox'", ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Open_MissingTensor_NamesIt()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "missing.gguf");
        new TinyModel().ToGguf(include: n => n != "blk.1.ffn_up.weight").Write(path);
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(path));
        Assert.Contains("missing tensor 'blk.1.ffn_up.weight'", ex.Message);
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void Open_WrongShape_ReportsActualAndExpected()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "shape.gguf");
        var tiny = new TinyModel();
        var i = tiny.Tensors.FindIndex(t => t.Name == "blk.0.attn_q.weight");
        tiny.Tensors[i] = (tiny.Tensors[i].Name, [4, 16], tiny.Tensors[i].Data);
        tiny.ToGguf().Write(path);
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(path));
        Assert.Contains("tensor 'blk.0.attn_q.weight' has shape [4, 16], expected [8, 8]", ex.Message);
    }

    [Fact]
    public void Open_MissingHyperParameter_NamesKey()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "nokey.gguf");
        var w = new GgufWriter();
        w.AddMetadata("general.architecture", "llama");
        w.AddMetadata("llama.embedding_length", 8u);
        w.Write(path);
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(path));
        Assert.Contains("missing metadata 'llama.attention.head_count'", ex.Message);
    }

    [Fact]
    public void Open_EmptyFile_Rejected() => AssertRejected([], "bad magic");

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> and opens it; true when it loads.</summary>
    private static bool Attempt(string path, ReadOnlySpan<byte> bytes)
    {
        using (var f = new FileStream(path, FileMode.Create, FileAccess.Write))
        {
            f.Write(bytes);
        }
        try
        {
            using var model = ModelFiles.Open(path);
            return true;
        }
        catch (ModelFormatException ex)
        {
            Assert.Contains(path, ex.Message);
            return false;
        }
        catch (Exception ex)
        {
            Assert.Fail($"{bytes.Length}-byte input: unexpected {ex}");
            throw;
        }
    }

    private static void AssertRejected(byte[] bytes, string expected)
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "hostile.gguf");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<ModelFormatException>(() => GgufFile.Open(path));
        Assert.Contains(expected, ex.Message);
        Assert.Contains(path, ex.Message);
        Assert.Equal(path, ex.FilePath);
    }

    private static byte[] Raw(Action<BinaryWriter> build)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            build(w);
        }
        return ms.ToArray();
    }

    private static void Header(BinaryWriter w, ulong tensors, ulong kvs, uint version = 3)
    {
        w.Write(GgufFile.Magic);
        w.Write(version);
        w.Write(tensors);
        w.Write(kvs);
    }

    private static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    /// <summary>One tensor info (dims innermost first as GGUF stores them) and 64 bytes of data.</summary>
    private static void Tensor(BinaryWriter w, string name, long[] ne, uint type, ulong offset, uint? nDims = null)
    {
        Header(w, 1, 0);
        TensorInfo(w, name, ne, type, offset, nDims);
        w.Write(new byte[64]);
    }

    private static void TensorInfo(BinaryWriter w, string name, long[] ne, uint type, ulong offset, uint? nDims = null)
    {
        Str(w, name);
        w.Write(nDims ?? (uint)ne.Length);
        for (var i = 0; i < (nDims ?? (uint)ne.Length); i++)
        {
            w.Write(i < ne.Length ? (ulong)ne[i] : 1UL);
        }
        w.Write(type);
        w.Write(offset);
    }
}
