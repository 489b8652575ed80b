namespace Tandem.Engine.Models;

/// <summary>A named tensor held as floats before encoding (random models, tests).</summary>
public sealed record FloatTensor(string Name, long[] Shape, float[] Values);

/// <summary>
/// Deterministic random weights for a llama model: the same config and seed give the same numbers on every
/// machine (own SplitMix64 + Box-Muller, no System.Random). Matrices are N(0, 1/cols) so activations keep
/// their scale through the layers; norm weights are near 1.
/// </summary>
public static class RandomModel
{
    public static ModelConfig Config(ModelPreset preset, int vocabSize, RopeStyle ropeStyle) => new()
    {
        Architecture = "llama",
        HiddenSize = preset.HiddenSize,
        IntermediateSize = preset.IntermediateSize,
        NumLayers = preset.NumLayers,
        NumHeads = preset.NumHeads,
        NumKvHeads = preset.NumKvHeads,
        HeadDim = preset.HiddenSize / preset.NumHeads,
        VocabSize = vocabSize,
        ContextLength = preset.ContextLength,
        RopeStyle = ropeStyle,
        TiedEmbeddings = false,
    };

    /// <summary>All tensors of <paramref name="c"/> under canonical (GGUF) names, in a fixed order.</summary>
    public static List<FloatTensor> Tensors(ModelConfig c, ulong seed)
    {
        var rng = new SplitMix64(seed);
        var list = new List<FloatTensor>();
        void Matrix(string name, int rows, int cols) => list.Add(new FloatTensor(name, [rows, cols], rng.Normals(rows * cols, 1 / MathF.Sqrt(cols), 0)));
        void Vector(string name, int n, float mean, float std) => list.Add(new FloatTensor(name, [n], rng.Normals(n, std, mean)));

        list.Add(new FloatTensor("token_embd.weight", [c.VocabSize, c.HiddenSize], rng.Normals(c.VocabSize * c.HiddenSize, 1f, 0)));
        for (var i = 0; i < c.NumLayers; i++)
        {
            var p = $"blk.{i}.";
            Vector(p + "attn_norm.weight", c.HiddenSize, 1f, 0.1f);
            Matrix(p + "attn_q.weight", c.QDim, c.HiddenSize);
            Matrix(p + "attn_k.weight", c.KvDim, c.HiddenSize);
            Matrix(p + "attn_v.weight", c.KvDim, c.HiddenSize);
            if (c.AttentionBias)
            {
                Vector(p + "attn_q.bias", c.QDim, 0, 0.1f);
                Vector(p + "attn_k.bias", c.KvDim, 0, 0.1f);
                Vector(p + "attn_v.bias", c.KvDim, 0, 0.1f);
            }
            if (c.QkNorm)
            {
                Vector(p + "attn_q_norm.weight", c.HeadDim, 1f, 0.1f);
                Vector(p + "attn_k_norm.weight", c.HeadDim, 1f, 0.1f);
            }
            Matrix(p + "attn_output.weight", c.HiddenSize, c.QDim);
            Vector(p + "ffn_norm.weight", c.HiddenSize, 1f, 0.1f);
            Matrix(p + "ffn_gate.weight", c.IntermediateSize, c.HiddenSize);
            Matrix(p + "ffn_up.weight", c.IntermediateSize, c.HiddenSize);
            Matrix(p + "ffn_down.weight", c.HiddenSize, c.IntermediateSize);
        }
        Vector("output_norm.weight", c.HiddenSize, 1f, 0.1f);
        if (!c.TiedEmbeddings)
        {
            Matrix("output.weight", c.VocabSize, c.HiddenSize);
        }
        return list;
    }

    /// <summary>
    /// Reorders the rows of a q or k projection from the interleaved RoPE layout (GGUF llama) to the rotate-half
    /// layout (Hugging Face), so both files of one random model compute the same function.
    /// </summary>
    public static float[] InterleavedToNeoxRows(float[] values, int heads, int headDim, int cols)
    {
        var result = new float[values.Length];
        var half = headDim / 2;
        for (var h = 0; h < heads; h++)
        {
            for (var i = 0; i < half; i++)
            {
                for (var part = 0; part < 2; part++)
                {
                    var from = (h * headDim) + (2 * i) + part;
                    var to = (h * headDim) + (part * half) + i;
                    Array.Copy(values, (long)from * cols, result, (long)to * cols, cols);
                }
            }
        }
        return result;
    }

    /// <summary>Small deterministic generator (SplitMix64) with Box-Muller normals.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

        public float[] Normals(int n, float std, float mean)
        {
            var v = new float[n];
            for (var i = 0; i < n; i += 2)
            {
                var u1 = 1.0 - NextDouble();
                var u2 = NextDouble();
                var r = Math.Sqrt(-2 * Math.Log(u1));
                v[i] = mean + (std * (float)(r * Math.Cos(2 * Math.PI * u2)));
                if (i + 1 < n)
                {
                    v[i + 1] = mean + (std * (float)(r * Math.Sin(2 * Math.PI * u2)));
                }
            }
            return v;
        }
    }
}
