using Tandem.Engine.Models;

namespace Tandem.Engine.Inference;

/// <summary>Rotary position embedding: per-pair inverse frequencies (with Llama 3 / linear scaling) and the rotation itself.</summary>
internal sealed class RotaryEmbedding
{
    private readonly double[] _invFreq;
    private readonly RopeStyle _style;
    private readonly int _half;

    public RotaryEmbedding(ModelConfig config, float[]? frequencyFactors)
    {
        _style = config.RopeStyle;
        _half = config.HeadDim / 2;
        _invFreq = InverseFrequencies(config, frequencyFactors);
    }

    public int Pairs => _half;

    /// <summary>Inverse frequency of each dimension pair after scaling; exposed so tests can check it against the published formula.</summary>
    public static double[] InverseFrequencies(ModelConfig config, float[]? frequencyFactors)
    {
        var half = config.HeadDim / 2;
        var inv = new double[half];
        for (var i = 0; i < half; i++)
        {
            inv[i] = 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / config.HeadDim);
        }
        if (frequencyFactors is not null)
        {
            // GGUF llama3 models carry the scaling precomputed as per-pair divisors (rope_freqs.weight).
            if (frequencyFactors.Length != half)
            {
                throw new ModelFormatException("rope_freqs.weight", $"has {frequencyFactors.Length} entries, expected {half}");
            }
            for (var i = 0; i < half; i++)
            {
                inv[i] /= frequencyFactors[i];
            }
            return inv;
        }
        var s = config.RopeScaling;
        if (s is null)
        {
            return inv;
        }
        if (s.Type == "linear")
        {
            for (var i = 0; i < half; i++)
            {
                inv[i] /= s.Factor;
            }
        }
        else if (s.Type == "llama3")
        {
            double lowWavelen = s.OriginalContextLength / s.LowFreqFactor;
            double highWavelen = s.OriginalContextLength / s.HighFreqFactor;
            for (var i = 0; i < half; i++)
            {
                var wavelen = 2 * Math.PI / inv[i];
                if (wavelen < highWavelen)
                {
                    continue;
                }
                if (wavelen > lowWavelen)
                {
                    inv[i] /= s.Factor;
                    continue;
                }
                var smooth = ((s.OriginalContextLength / wavelen) - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                inv[i] = ((1 - smooth) * inv[i] / s.Factor) + (smooth * inv[i]);
            }
        }
        return inv;
    }

    /// <summary>Fills cos/sin tables [pairs] for one position.</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (var i = 0; i < _half; i++)
        {
            var angle = position * _invFreq[i];
            cos[i] = (float)Math.Cos(angle);
            sin[i] = (float)Math.Sin(angle);
        }
    }

    /// <summary>Rotates every head in <paramref name="x"/> ([heads, head_dim]) in place.</summary>
    public void Apply(Span<float> x, int heads, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        var headDim = _half * 2;
        for (var h = 0; h < heads; h++)
        {
            var v = x.Slice(h * headDim, headDim);
            if (_style == RopeStyle.Interleaved)
            {
                for (var i = 0; i < _half; i++)
                {
                    float a = v[2 * i], b = v[(2 * i) + 1];
                    v[2 * i] = (a * cos[i]) - (b * sin[i]);
                    v[(2 * i) + 1] = (a * sin[i]) + (b * cos[i]);
                }
            }
            else
            {
                for (var i = 0; i < _half; i++)
                {
                    float a = v[i], b = v[i + _half];
                    v[i] = (a * cos[i]) - (b * sin[i]);
                    v[i + _half] = (a * sin[i]) + (b * cos[i]);
                }
            }
        }
    }
}
