using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Tandem.Engine.Inference;

namespace Tandem.Engine.Kernels;

/// <summary>One query row of an attention tile: its query vector, where its output goes, and its absolute position.</summary>
internal readonly unsafe struct AttentionRow(float* query, float* output, int position)
{
    public readonly float* Query = query;
    public readonly float* Output = output;
    public readonly int Position = position;
}

/// <summary>
/// Causal attention of up to four query rows that share one sequence and one kv head, over keys/values read through the
/// sequence's block table. Every key and value vector loaded is used for all rows of the tile (prefill: consecutive
/// tokens of a chunk; GQA: the heads of one group). Each row's arithmetic is the same whatever the tile holds, so results
/// do not depend on batching or threads. AVX-512 when the head dimension is a multiple of 16, else TensorPrimitives.
/// </summary>
internal static unsafe class AttentionKernel
{
    public const int MaxRows = 4;

    /// <summary>Attends <paramref name="m"/> (1–4) rows; scores is scratch of m × stride floats, stride &gt; the largest position.</summary>
    public static void Attend(PagedKvCache cache, IReadOnlyList<int> blocks, int layer, int kvHead, int hd, AttentionRow* rows, int m, float* scores, int stride, float scale)
    {
        if (Simd.Use512 && hd % 16 == 0)
        {
            switch (m)
            {
                case 1:
                    Attend512<R1>(cache, blocks, layer, kvHead, hd, rows, scores, stride, scale);
                    break;
                case 2:
                    Attend512<R2>(cache, blocks, layer, kvHead, hd, rows, scores, stride, scale);
                    break;
                case 3:
                    Attend512<R3>(cache, blocks, layer, kvHead, hd, rows, scores, stride, scale);
                    break;
                default:
                    Attend512<R4>(cache, blocks, layer, kvHead, hd, rows, scores, stride, scale);
                    break;
            }
            return;
        }
        for (var i = 0; i < m; i++)
        {
            AttendPortable(cache, blocks, layer, kvHead, hd, rows[i], scores, scale);
        }
    }

    private static void AttendPortable(PagedKvCache cache, IReadOnlyList<int> blocks, int layer, int kvHead, int hd, AttentionRow row, float* scores, float scale)
    {
        int bs = cache.BlockSize, kvDim = cache.KvDim, last = row.Position;
        var q = new ReadOnlySpan<float>(row.Query, hd);
        for (int b = 0, p0 = 0; p0 <= last; b++, p0 += bs)
        {
            var keys = cache.Keys(layer, blocks[b]) + (kvHead * hd);
            var count = Math.Min(bs, last + 1 - p0);
            for (var j = 0; j < count; j++)
            {
                scores[p0 + j] = TensorPrimitives.Dot(q, new ReadOnlySpan<float>(keys + ((long)j * kvDim), hd)) * scale;
            }
        }
        Softmax(new Span<float>(scores, last + 1));
        var output = new Span<float>(row.Output, hd);
        output.Clear();
        for (int b = 0, p0 = 0; p0 <= last; b++, p0 += bs)
        {
            var values = cache.Values(layer, blocks[b]) + (kvHead * hd);
            var count = Math.Min(bs, last + 1 - p0);
            for (var j = 0; j < count; j++)
            {
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(values + ((long)j * kvDim), hd), scores[p0 + j], output, output);
            }
        }
    }

    private static void Attend512<TM>(PagedKvCache cache, IReadOnlyList<int> blocks, int layer, int kvHead, int hd, AttentionRow* rows, float* scores, int stride, float scale)
        where TM : struct, IRowCount
    {
        int bs = cache.BlockSize, kvDim = cache.KvDim;
        var n = TM.Count;
        var last = rows[0].Position;
        for (var i = 1; i < n; i++)
        {
            last = Math.Max(last, rows[i].Position);
        }
        float* q0 = rows[0].Query, q1 = rows[n > 1 ? 1 : 0].Query, q2 = rows[n > 2 ? 2 : 0].Query, q3 = rows[n > 3 ? 3 : 0].Query;
        float* s0 = scores, s1 = scores + stride, s2 = scores + (2 * stride), s3 = scores + (3 * stride);

        // Scores: every key vector is loaded once for all rows.
        for (int b = 0, p0 = 0; p0 <= last; b++, p0 += bs)
        {
            var keys = cache.Keys(layer, blocks[b]) + (kvHead * hd);
            var count = Math.Min(bs, last + 1 - p0);
            for (var j = 0; j < count; j++)
            {
                var k = keys + ((long)j * kvDim);
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (var c = 0; c < hd; c += 16)
                {
                    var kv = Vector512.Load(k + c);
                    a0 = Vector512.MultiplyAddEstimate(Vector512.Load(q0 + c), kv, a0);
                    if (TM.Count > 1)
                    {
                        a1 = Vector512.MultiplyAddEstimate(Vector512.Load(q1 + c), kv, a1);
                    }
                    if (TM.Count > 2)
                    {
                        a2 = Vector512.MultiplyAddEstimate(Vector512.Load(q2 + c), kv, a2);
                    }
                    if (TM.Count > 3)
                    {
                        a3 = Vector512.MultiplyAddEstimate(Vector512.Load(q3 + c), kv, a3);
                    }
                }
                var p = p0 + j;
                s0[p] = Vector512.Sum(a0) * scale;
                if (TM.Count > 1)
                {
                    s1[p] = Vector512.Sum(a1) * scale;
                }
                if (TM.Count > 2)
                {
                    s2[p] = Vector512.Sum(a2) * scale;
                }
                if (TM.Count > 3)
                {
                    s3[p] = Vector512.Sum(a3) * scale;
                }
            }
        }

        // Causal softmax per row; positions past a row's own are zero weights.
        for (var i = 0; i < n; i++)
        {
            var s = scores + ((long)i * stride);
            var pos = rows[i].Position;
            Softmax(new Span<float>(s, pos + 1));
            new Span<float>(s + pos + 1, last - pos).Clear();
        }

        // Outputs: 16 dimensions at a time, accumulated in registers; every value vector is loaded once for all rows.
        float* o0 = rows[0].Output, o1 = rows[n > 1 ? 1 : 0].Output, o2 = rows[n > 2 ? 2 : 0].Output, o3 = rows[n > 3 ? 3 : 0].Output;
        for (var c = 0; c < hd; c += 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int b = 0, p0 = 0; p0 <= last; b++, p0 += bs)
            {
                var values = cache.Values(layer, blocks[b]) + (kvHead * hd) + c;
                var count = Math.Min(bs, last + 1 - p0);
                for (var j = 0; j < count; j++)
                {
                    var v = Vector512.Load(values + ((long)j * kvDim));
                    var p = p0 + j;
                    a0 = Vector512.MultiplyAddEstimate(Vector512.Create(s0[p]), v, a0);
                    if (TM.Count > 1)
                    {
                        a1 = Vector512.MultiplyAddEstimate(Vector512.Create(s1[p]), v, a1);
                    }
                    if (TM.Count > 2)
                    {
                        a2 = Vector512.MultiplyAddEstimate(Vector512.Create(s2[p]), v, a2);
                    }
                    if (TM.Count > 3)
                    {
                        a3 = Vector512.MultiplyAddEstimate(Vector512.Create(s3[p]), v, a3);
                    }
                }
            }
            a0.Store(o0 + c);
            if (TM.Count > 1)
            {
                a1.Store(o1 + c);
            }
            if (TM.Count > 2)
            {
                a2.Store(o2 + c);
            }
            if (TM.Count > 3)
            {
                a3.Store(o3 + c);
            }
        }
    }

    /// <summary>In-place softmax (max-subtracted, vectorized).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Softmax(Span<float> x)
    {
        var max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        TensorPrimitives.Multiply(x, 1f / TensorPrimitives.Sum(x), x);
    }

    private interface IRowCount
    {
        static abstract int Count { get; }
    }

    private readonly struct R1 : IRowCount
    {
        public static int Count => 1;
    }

    private readonly struct R2 : IRowCount
    {
        public static int Count => 2;
    }

    private readonly struct R3 : IRowCount
    {
        public static int Count => 3;
    }

    private readonly struct R4 : IRowCount
    {
        public static int Count => 4;
    }
}
