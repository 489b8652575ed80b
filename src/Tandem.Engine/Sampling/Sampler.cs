using System.Numerics.Tensors;
using Tandem.Abstractions;

namespace Tandem.Engine.Sampling;

/// <summary>
/// Picks the next token of one sequence from its logits. Create one per sequence: it owns the random generator
/// (xoshiro256**, so a seeded sampler repeats its choices on any platform) and reusable buffers sized to the vocabulary
/// (no allocation per call after the first). Not thread-safe.
/// <para>Order: repetition penalty (HF, prompt + output) → presence/frequency penalties (OpenAI, output) →
/// temperature 0 ⇒ argmax (lowest id on ties); else temperature → top-k → top-p → min-p → renormalise → draw.</para>
/// </summary>
public sealed class Sampler
{
    private Xoshiro256StarStar _rng;
    private byte[] _seen = [];
    private int[] _counts = [];
    private ulong[] _keys = [];
    private float[] _weights = [];

    public Sampler(SamplingParams parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        parameters.Validate();
        Parameters = parameters;
        _rng = new Xoshiro256StarStar(parameters.Seed ?? (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue));
    }

    public SamplingParams Parameters { get; }

    /// <summary>Chooses a token. <paramref name="logits"/> (one per vocabulary entry) is modified in place by the penalties.</summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> promptTokens, ReadOnlySpan<int> outputTokens) =>
        SampleCore(logits, promptTokens, outputTokens, wantLogprob: false, out _);

    /// <summary>
    /// Chooses a token and returns its log-probability: the log-softmax of the logits after the penalties but before
    /// temperature and truncation (top-k/top-p/min-p), i.e. the model's own (penalised) distribution, as in OpenAI's
    /// logprobs. Costs one extra pass over the vocabulary.
    /// </summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> promptTokens, ReadOnlySpan<int> outputTokens, out float logprob) =>
        SampleCore(logits, promptTokens, outputTokens, wantLogprob: true, out logprob);

    private int SampleCore(Span<float> logits, ReadOnlySpan<int> promptTokens, ReadOnlySpan<int> outputTokens, bool wantLogprob, out float logprob)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("logits are empty", nameof(logits));
        }
        ApplyPenalties(logits, promptTokens, outputTokens);
        var max = TensorPrimitives.Max(logits);
        var token = Parameters.IsGreedy || float.IsNegativeInfinity(max) || float.IsNaN(max)
            ? Argmax(logits)
            : Draw(logits, max);
        logprob = wantLogprob ? LogSoftmaxAt(logits, max, token) : 0f;
        return token;
    }

    /// <summary>First index of the largest logit.</summary>
    internal static int Argmax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        var bestValue = logits[0];
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > bestValue)
            {
                bestValue = logits[i];
                best = i;
            }
        }
        return best;
    }

    private float LogSoftmaxAt(ReadOnlySpan<float> logits, float max, int token)
    {
        EnsureCapacity(ref _weights, logits.Length);
        var w = _weights.AsSpan(0, logits.Length);
        TensorPrimitives.Subtract(logits, max, w);
        TensorPrimitives.Exp(w, w);
        double sum = TensorPrimitives.Sum(w);
        return (float)(logits[token] - max - Math.Log(sum));
    }

    /// <summary>
    /// The logit-processing step: repetition penalty over the distinct tokens of prompt + output
    /// (logit &gt; 0 ⇒ logit / penalty, else logit × penalty), then presence and frequency penalties over the output
    /// (logit −= presence × [count &gt; 0] + frequency × count).
    /// </summary>
    internal void ApplyPenalties(Span<float> logits, ReadOnlySpan<int> promptTokens, ReadOnlySpan<int> outputTokens)
    {
        var p = Parameters;
        if (p.RepetitionPenalty != 1f)
        {
            EnsureCapacity(ref _seen, logits.Length);
            var penalty = p.RepetitionPenalty;
            Repeat(logits, promptTokens, penalty);
            Repeat(logits, outputTokens, penalty);
            Clear(promptTokens);
            Clear(outputTokens);
        }
        if (p.PresencePenalty != 0f || p.FrequencyPenalty != 0f)
        {
            EnsureCapacity(ref _counts, logits.Length);
            foreach (var t in outputTokens)
            {
                CheckToken(t, logits.Length);
                _counts[t]++;
            }
            foreach (var t in outputTokens)
            {
                var count = _counts[t];
                if (count > 0)
                {
                    logits[t] -= p.PresencePenalty + (p.FrequencyPenalty * count);
                    _counts[t] = 0;
                }
            }
        }

        void Repeat(Span<float> logits, ReadOnlySpan<int> tokens, float penalty)
        {
            foreach (var t in tokens)
            {
                CheckToken(t, logits.Length);
                if (_seen[t] == 0)
                {
                    _seen[t] = 1;
                    var v = logits[t];
                    logits[t] = v > 0 ? v / penalty : v * penalty;
                }
            }
        }

        void Clear(ReadOnlySpan<int> tokens)
        {
            foreach (var t in tokens)
            {
                _seen[t] = 0;
            }
        }
    }

    private static void CheckToken(int token, int vocab)
    {
        if ((uint)token >= (uint)vocab)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary of {vocab}");
        }
    }

    private int Draw(ReadOnlySpan<float> logits, float max)
    {
        var p = Parameters;
        var vocab = logits.Length;
        var invT = 1f / p.Temperature;
        var topK = p.TopK > 0 && p.TopK < vocab ? p.TopK : 0;
        EnsureCapacity(ref _weights, vocab);

        if (topK == 0 && p.TopP >= 1f)
        {
            // No ordering needed: weights w = exp((l − max)/T) ∈ (0, 1], min-p keeps w ≥ min_p (w_max = 1).
            var w = _weights.AsSpan(0, vocab);
            Weights(logits, max, invT, w);
            if (p.MinP > 0f)
            {
                for (var i = 0; i < vocab; i++)
                {
                    if (w[i] < p.MinP)
                    {
                        w[i] = 0f;
                    }
                }
            }
            return Pick(w);
        }

        // Descending (logit, then ascending id) order through one sortable 64-bit key per token.
        EnsureCapacity(ref _keys, vocab);
        var keys = _keys.AsSpan(0, vocab);
        for (var i = 0; i < vocab; i++)
        {
            keys[i] = Key(logits[i], i);
        }

        int candidates;
        double total;
        if (topK > 0)
        {
            SelectSmallest(keys, topK);
            keys[..topK].Sort();
            candidates = topK;
            total = 0;
            for (var i = 0; i < topK; i++)
            {
                var id = (int)(uint)keys[i];
                var wi = MathF.Exp((logits[id] - max) * invT);
                _weights[i] = wi;
                total += wi;
            }
        }
        else
        {
            // top-p alone: partial selection of a growing prefix until it holds the nucleus.
            var all = _weights.AsSpan(0, vocab);
            Weights(logits, max, invT, all);
            total = 0;
            foreach (var v in all)
            {
                total += v;
            }
            var target = p.TopP * total;
            var m = Math.Min(vocab, 64);
            while (true)
            {
                SelectSmallest(keys, m);
                keys[..m].Sort();
                double cum = 0;
                var reached = false;
                for (var i = 0; i < m; i++)
                {
                    cum += all[(int)(uint)keys[i]];
                    if (cum >= target)
                    {
                        reached = true;
                        break;
                    }
                }
                if (reached || m == vocab)
                {
                    break;
                }
                m = (int)Math.Min(vocab, (long)m * 8);
            }
            candidates = m;
        }

        // Candidate weights in sorted order (for top-k they are already in _weights[0..k)).
        Span<float> cw = _weights.AsSpan(0, candidates);
        if (topK == 0)
        {
            // The candidates' weights, recomputed in sorted order (copying from the full array in place would overlap).
            for (var i = 0; i < candidates; i++)
            {
                var id = (int)(uint)keys[i];
                cw[i] = MathF.Exp((logits[id] - max) * invT);
            }
        }

        var keep = candidates;
        if (p.TopP < 1f)
        {
            var target = p.TopP * total;
            double before = 0;
            var i = 0;
            while (i < candidates && (i == 0 || before < target))
            {
                before += cw[i];
                i++;
            }
            keep = i;
        }
        if (p.MinP > 0f)
        {
            var threshold = p.MinP * cw[0];
            var i = 1;
            while (i < keep && cw[i] >= threshold)
            {
                i++;
            }
            keep = i;
        }
        var choice = Pick(cw[..keep]);
        return (int)(uint)keys[choice];
    }

    /// <summary>w = exp((logits − max) / T).</summary>
    private static void Weights(ReadOnlySpan<float> logits, float max, float invT, Span<float> w)
    {
        TensorPrimitives.Subtract(logits, max, w);
        TensorPrimitives.Multiply(w, invT, w);
        TensorPrimitives.Exp(w, w);
    }

    /// <summary>Index drawn with probability proportional to <paramref name="weights"/>.</summary>
    private int Pick(ReadOnlySpan<float> weights)
    {
        double total = 0;
        foreach (var v in weights)
        {
            total += v;
        }
        var u = _rng.NextDouble() * total;
        double cum = 0;
        var last = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            if (weights[i] > 0f)
            {
                cum += weights[i];
                last = i;
                if (u < cum)
                {
                    return i;
                }
            }
        }
        return last;
    }

    /// <summary>Ascending keys = descending logits, ties by ascending id.</summary>
    internal static ulong Key(float logit, int id)
    {
        var bits = BitConverter.SingleToUInt32Bits(logit);
        var ascending = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
        return ((ulong)~ascending << 32) | (uint)id;
    }

    /// <summary>Rearranges <paramref name="a"/> so that its first <paramref name="k"/> items are its k smallest (quickselect, O(n)).</summary>
    internal static void SelectSmallest(Span<ulong> a, int k)
    {
        if (k <= 0 || k >= a.Length)
        {
            return;
        }
        var target = k - 1;
        int lo = 0, hi = a.Length - 1;
        while (hi > lo)
        {
            var mid = lo + ((hi - lo) >> 1);
            ulong x = a[lo], y = a[mid], z = a[hi];
            var pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
            int i = lo, j = hi;
            while (i <= j)
            {
                while (a[i] < pivot)
                {
                    i++;
                }
                while (a[j] > pivot)
                {
                    j--;
                }
                if (i <= j)
                {
                    (a[i], a[j]) = (a[j], a[i]);
                    i++;
                    j--;
                }
            }
            if (target <= j)
            {
                hi = j;
            }
            else if (target >= i)
            {
                lo = i;
            }
            else
            {
                return;
            }
        }
    }

    private static void EnsureCapacity<T>(ref T[] array, int length)
    {
        if (array.Length < length)
        {
            array = new T[length];
        }
    }
}
