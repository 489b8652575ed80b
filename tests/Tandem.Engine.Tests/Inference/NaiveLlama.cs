using System.Buffers.Binary;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Inference;

/// <summary>
/// An independent, deliberately plain llama forward pass for checking the engine: double precision, weights
/// decoded here (not by the engine's conversion code), one contiguous KV array per layer (no paging), no SIMD,
/// no threads, straight from the published formulas.
/// </summary>
internal sealed class NaiveLlama
{
    private readonly ModelConfig _c;
    private readonly double[][] _embedding;
    private readonly double[][] _output;
    private readonly double[] _outputNorm;
    private readonly LayerWeights[] _layers;
    private readonly double[]? _freqFactors;
    private readonly List<double[]>[] _keys;
    private readonly List<double[]>[] _values;

    public NaiveLlama(ModelConfig config, ModelWeights weights)
    {
        _c = config;
        _embedding = Matrix(weights.Get("token_embd.weight"));
        _output = config.TiedEmbeddings ? _embedding : Matrix(weights.Get("output.weight"));
        _outputNorm = Vector(weights.Get("output_norm.weight"));
        _freqFactors = weights.TryGet("rope_freqs.weight") is { } f ? Vector(f) : null;
        _layers = new LayerWeights[config.NumLayers];
        _keys = new List<double[]>[config.NumLayers];
        _values = new List<double[]>[config.NumLayers];
        for (var i = 0; i < config.NumLayers; i++)
        {
            WeightTensor? Opt(string n) => weights.TryGet($"blk.{i}.{n}");
            WeightTensor Req(string n) => weights.Get($"blk.{i}.{n}");
            _layers[i] = new LayerWeights(
                Vector(Req("attn_norm.weight")), Matrix(Req("attn_q.weight")), Matrix(Req("attn_k.weight")), Matrix(Req("attn_v.weight")),
                Matrix(Req("attn_output.weight")),
                Opt("attn_q.bias") is { } bq ? Vector(bq) : null, Opt("attn_k.bias") is { } bk ? Vector(bk) : null, Opt("attn_v.bias") is { } bv ? Vector(bv) : null,
                Opt("attn_q_norm.weight") is { } qn ? Vector(qn) : null, Opt("attn_k_norm.weight") is { } kn ? Vector(kn) : null,
                Vector(Req("ffn_norm.weight")), Matrix(Req("ffn_gate.weight")), Matrix(Req("ffn_up.weight")), Matrix(Req("ffn_down.weight")));
            _keys[i] = [];
            _values[i] = [];
        }
    }

    public int Position => _keys[0].Count;

    /// <summary>Runs one token at the next position and returns the next-token logits.</summary>
    public double[] Step(int token)
    {
        var c = _c;
        var pos = Position;
        var x = (double[])_embedding[token].Clone();
        for (var l = 0; l < c.NumLayers; l++)
        {
            var w = _layers[l];
            var h = RmsNorm(x, w.AttnNorm);
            var q = MatVec(w.Wq, h);
            var k = MatVec(w.Wk, h);
            var v = MatVec(w.Wv, h);
            if (w.Bq is not null)
            {
                Add(q, w.Bq);
                Add(k, w.Bk!);
                Add(v, w.Bv!);
            }
            if (w.QNorm is not null)
            {
                HeadNorm(q, c.NumHeads, w.QNorm);
                HeadNorm(k, c.NumKvHeads, w.KNorm!);
            }
            Rope(q, c.NumHeads, pos);
            Rope(k, c.NumKvHeads, pos);
            _keys[l].Add(k);
            _values[l].Add(v);

            var att = new double[c.QDim];
            var group = c.NumHeads / c.NumKvHeads;
            for (var head = 0; head < c.NumHeads; head++)
            {
                var kvh = head / group;
                var scores = new double[pos + 1];
                for (var p = 0; p <= pos; p++)
                {
                    double s = 0;
                    for (var d = 0; d < c.HeadDim; d++)
                    {
                        s += q[(head * c.HeadDim) + d] * _keys[l][p][(kvh * c.HeadDim) + d];
                    }
                    scores[p] = s / Math.Sqrt(c.HeadDim);
                }
                var max = scores.Max();
                var sum = 0.0;
                for (var p = 0; p <= pos; p++)
                {
                    scores[p] = Math.Exp(scores[p] - max);
                    sum += scores[p];
                }
                for (var p = 0; p <= pos; p++)
                {
                    for (var d = 0; d < c.HeadDim; d++)
                    {
                        att[(head * c.HeadDim) + d] += scores[p] / sum * _values[l][p][(kvh * c.HeadDim) + d];
                    }
                }
            }
            Add(x, MatVec(w.Wo, att));

            h = RmsNorm(x, w.FfnNorm);
            var gate = MatVec(w.Gate, h);
            var up = MatVec(w.Up, h);
            for (var i = 0; i < gate.Length; i++)
            {
                gate[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
            }
            Add(x, MatVec(w.Down, gate));
        }
        return MatVec(_output, RmsNorm(x, _outputNorm));
    }

    private void Rope(double[] x, int heads, int pos)
    {
        var hd = _c.HeadDim;
        var half = hd / 2;
        for (var head = 0; head < heads; head++)
        {
            for (var i = 0; i < half; i++)
            {
                var freq = Math.Pow(_c.RopeTheta, -2.0 * i / hd);
                if (_freqFactors is not null)
                {
                    freq /= _freqFactors[i];
                }
                else if (_c.RopeScaling is { Type: "llama3" } s)
                {
                    var wavelen = 2 * Math.PI / freq;
                    if (wavelen > s.OriginalContextLength / s.LowFreqFactor)
                    {
                        freq /= s.Factor;
                    }
                    else if (wavelen >= s.OriginalContextLength / s.HighFreqFactor)
                    {
                        var smooth = ((s.OriginalContextLength / wavelen) - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                        freq = ((1 - smooth) * freq / s.Factor) + (smooth * freq);
                    }
                }
                else if (_c.RopeScaling is { Type: "linear" } lin)
                {
                    freq /= lin.Factor;
                }
                var (a, b) = _c.RopeStyle == RopeStyle.Interleaved ? ((head * hd) + (2 * i), (head * hd) + (2 * i) + 1) : ((head * hd) + i, (head * hd) + i + half);
                double cos = Math.Cos(pos * freq), sin = Math.Sin(pos * freq);
                double x0 = x[a], x1 = x[b];
                x[a] = (x0 * cos) - (x1 * sin);
                x[b] = (x0 * sin) + (x1 * cos);
            }
        }
    }

    private void HeadNorm(double[] x, int heads, double[] weight)
    {
        for (var head = 0; head < heads; head++)
        {
            var slice = x.AsSpan(head * _c.HeadDim, _c.HeadDim).ToArray();
            RmsNorm(slice, weight).CopyTo(x, head * _c.HeadDim);
        }
    }

    private double[] RmsNorm(double[] x, double[] w)
    {
        var ss = x.Sum(v => v * v) / x.Length;
        var scale = 1 / Math.Sqrt(ss + _c.RmsNormEps);
        return x.Select((v, i) => v * scale * w[i]).ToArray();
    }

    private static double[] MatVec(double[][] m, double[] x)
    {
        var y = new double[m.Length];
        for (var r = 0; r < m.Length; r++)
        {
            double s = 0;
            for (var i = 0; i < x.Length; i++)
            {
                s += m[r][i] * x[i];
            }
            y[r] = s;
        }
        return y;
    }

    private static void Add(double[] x, double[] y)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] += y[i];
        }
    }

    private static double[] Vector(WeightTensor t) => Matrix(t).SelectMany(r => r).ToArray();

    /// <summary>Decodes a tensor's rows from its raw bytes (F32, F16, BF16, Q8_0) without the engine's conversion code.</summary>
    public static double[][] Matrix(WeightTensor t)
    {
        var rows = new double[t.Rows][];
        for (var r = 0; r < t.Rows; r++)
        {
            var bytes = t.Row(r);
            var row = new double[t.Cols];
            for (var i = 0; i < t.Cols; i++)
            {
                row[i] = t.Type switch
                {
                    TensorType.F32 => BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]),
                    TensorType.F16 => (double)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]),
                    TensorType.BF16 => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16),
                    TensorType.Q8_0 => (double)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i / 32 * 34)..]) * (sbyte)bytes[(i / 32 * 34) + 2 + (i % 32)],
                    _ => throw new NotSupportedException(t.Type.ToString()),
                };
            }
            rows[r] = row;
        }
        return rows;
    }

    private sealed record LayerWeights(
        double[] AttnNorm, double[][] Wq, double[][] Wk, double[][] Wv, double[][] Wo,
        double[]? Bq, double[]? Bk, double[]? Bv, double[]? QNorm, double[]? KNorm,
        double[] FfnNorm, double[][] Gate, double[][] Up, double[][] Down);
}
