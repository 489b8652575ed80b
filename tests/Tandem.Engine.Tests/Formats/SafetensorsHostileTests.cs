using Tandem.Engine.Models;

namespace Tandem.Engine.Tests.Formats;

/// <summary>Damaged Hugging Face directories must load or fail with a <see cref="ModelFormatException"/> naming the path.</summary>
public class SafetensorsHostileTests
{
    [Fact]
    public void Open_TruncatedSafetensors_ThrowsModelFormatException()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path);
        var file = Path.Combine(dir.Path, "model.safetensors");
        var original = File.ReadAllBytes(file);
        var headerEnd = 8 + (int)BitConverter.ToInt64(original, 0);
        var cuts = new SortedSet<int>();
        for (var i = 0; i < headerEnd + 8; i += i < 64 ? 1 : 7)
        {
            cuts.Add(i);
        }
        for (var i = 0; i < 60; i++)
        {
            cuts.Add(headerEnd + ((original.Length - headerEnd) * i / 60));
        }
        cuts.Add(original.Length - 1);
        Assert.True(cuts.Count >= 200);
        foreach (var cut in cuts)
        {
            Assert.False(Attempt(dir.Path, file, original.AsSpan(0, cut)), $"cut at {cut} loaded");
        }
        Assert.True(Attempt(dir.Path, file, original));
    }

    [Fact]
    public void Open_RandomByteFlips_LoadsOrThrowsModelFormatException()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path, shards: 2);
        var shard = Path.Combine(dir.Path, "model-00001-of-00002.safetensors");
        var config = Path.Combine(dir.Path, "config.json");
        var index = Path.Combine(dir.Path, "model.safetensors.index.json");
        var originals = new[] { shard, config, index }.ToDictionary(p => p, File.ReadAllBytes);
        var rng = new Random(777);
        var rejected = 0;
        const int Trials = 300;
        for (var trial = 0; trial < Trials; trial++)
        {
            var target = rng.Next(10) switch
            {
                < 6 => shard,
                < 8 => config,
                _ => index,
            };
            var bytes = (byte[])originals[target].Clone();
            var headerEnd = target == shard ? 8 + (int)BitConverter.ToInt64(bytes, 0) : bytes.Length;
            var flips = rng.Next(1, 9);
            for (var f = 0; f < flips; f++)
            {
                var pos = rng.Next(10) < 9 ? rng.Next(0, headerEnd) : rng.Next(0, bytes.Length);
                bytes[pos] = rng.Next(3) == 0 ? (byte)rng.Next(256) : (byte)(bytes[pos] ^ (1 << rng.Next(8)));
            }
            if (!Attempt(dir.Path, target, bytes))
            {
                rejected++;
            }
            File.WriteAllBytes(target, originals[target]);
        }
        Assert.InRange(rejected, 1, Trials);
    }

    [Fact]
    public void Open_MissingTensorInHfDirectory_NamesCanonicalName()
    {
        using var dir = TestModels.CreateTempDirectory();
        var tiny = new TinyModel();
        tiny.Tensors.RemoveAll(t => t.Name == "blk.1.ffn_gate.weight");
        tiny.WriteHf(dir.Path);
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("missing tensor 'blk.1.ffn_gate.weight'", ex.Message);
        Assert.Contains(dir.Path, ex.Message);
    }

    [Fact]
    public void Open_WrongShapeInHfDirectory_ReportsShapes()
    {
        using var dir = TestModels.CreateTempDirectory();
        var tiny = new TinyModel();
        var i = tiny.Tensors.FindIndex(t => t.Name == "blk.0.ffn_down.weight");
        tiny.Tensors[i] = (tiny.Tensors[i].Name, [16, 8], tiny.Tensors[i].Data);
        tiny.WriteHf(dir.Path);
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("tensor 'blk.0.ffn_down.weight' has shape [16, 8], expected [8, 16]", ex.Message);
    }

    [Fact]
    public void Open_MalformedConfigJson_Rejected()
    {
        using var dir = TestModels.CreateTempDirectory();
        new TinyModel().WriteHf(dir.Path);
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), """{"architectures": ["LlamaForCausalLM"], "hidden_size": "eight"}""");
        var ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("'hidden_size'", ex.Message);
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{not json");
        ex = Assert.Throws<ModelFormatException>(() => ModelFiles.Open(dir.Path));
        Assert.Contains("invalid JSON", ex.Message);
        Assert.Contains("config.json", ex.Message);
    }

    private static bool Attempt(string dir, string file, ReadOnlySpan<byte> bytes)
    {
        using (var f = new FileStream(file, FileMode.Create, FileAccess.Write))
        {
            f.Write(bytes);
        }
        try
        {
            using var model = ModelFiles.Open(dir);
            return true;
        }
        catch (ModelFormatException ex)
        {
            Assert.Contains(dir, ex.Message);
            return false;
        }
        catch (Exception ex)
        {
            Assert.Fail($"{Path.GetFileName(file)} ({bytes.Length} bytes): unexpected {ex}");
            throw;
        }
    }
}
