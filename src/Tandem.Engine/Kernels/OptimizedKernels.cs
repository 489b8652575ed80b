using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Kernels;

/// <summary>How big MatMuls are spread over threads.</summary>
internal enum ParallelMode
{
    /// <summary>Dedicated threads parked on events (default, see <see cref="OptimizedKernels"/>).</summary>
    WorkerPool,

    /// <summary><see cref="Parallel.For(int, int, Action{int})"/> over the same contiguous row chunks (kept for comparison benchmarks).</summary>
    ParallelFor,
}

/// <summary>
/// SIMD kernels: AVX-512 (16 floats) when accelerated, else AVX2 + FMA (8 floats), else scalar; F16, BF16 and
/// Q8_0 weights are decoded in registers (never to the heap).
/// <para>
/// MatMul, n = 1 (decode): four weight rows at a time are dotted with the input, decoding as they stream.
/// n &gt; 1 (prefill): a tile of four rows is decoded once into a small per-thread buffer (F32 rows are used in
/// place) and then dotted with all n inputs, two inputs at a time (4 × 2 register block), so each weight is
/// read from memory and converted once per call.
/// </para>
/// <para>
/// Threading: jobs below <see cref="ParallelThreshold"/> multiply-adds run on the calling thread; bigger ones
/// are split into at most <c>threads</c> contiguous row chunks. Measured on the 2-core AMD EPYC (Zen 4, AVX-512)
/// development box with ThreadingBenchmarks (F32 768 × 768, n = 1, two threads, BenchmarkDotNet short job):
/// worker pool 12.4 µs and 0 B per call vs Parallel.For 28.7 µs and ~1.5 KB per call (one thread: 24.5 µs), so
/// the worker pool is the default. At 256 × 256 both cost 7–8 µs against ~2–3 µs on one thread, hence the threshold.
/// </para>
/// Thread-safe: concurrent calls are allowed; pooled (big) MatMuls from different threads are serialised.
/// </summary>
internal sealed unsafe class OptimizedKernels : IKernels, IDisposable
{
    /// <summary>Multiply-adds (rows × cols × n) below which a MatMul stays on the calling thread.</summary>
    public const long DefaultParallelThreshold = 1L << 17;

    [ThreadStatic]
    private static float[]? _threadScratch;

    /// <summary>Set while this thread runs a part of a pooled job: nested pooled work then runs inline (no deadlock).</summary>
    [ThreadStatic]
    private static bool _inPart;

    private readonly Lock _gate = new();
    private readonly Action<int> _part;
    private readonly Action<int> _forPart;

    // The pooled ParallelFor in flight (guarded by _gate).
    private Action<int, int>? _forBody;
    private int _forCount;
    private int _forGrain;
    private int _forNext;
    private readonly ParallelMode _mode;
    private WorkerPool? _pool;

    // The pooled job in flight (guarded by _gate).
    private WeightTensor? _jobW;
    private float* _jobInput;
    private float* _jobOutput;
    private int _jobN;
    private int _jobChunk;

    public OptimizedKernels(int threads = 0, long parallelThreshold = DefaultParallelThreshold, ParallelMode mode = ParallelMode.WorkerPool)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        ArgumentOutOfRangeException.ThrowIfNegative(parallelThreshold);
        Threads = threads == 0 ? Environment.ProcessorCount : threads;
        ParallelThreshold = parallelThreshold;
        _mode = mode;
        _part = RunPart;
        _forPart = RunForPart;
    }

    public string Name => "optimized";

    public int Threads { get; }

    public long ParallelThreshold { get; }

    public void MatMul(WeightTensor w, ReadOnlySpan<float> input, Span<float> output, int n)
    {
        KernelChecks.MatMul(w, input, output, n);
        if (n == 0 || w.Rows == 0)
        {
            return;
        }
        var work = (long)w.Rows * w.Cols * n;
        var parts = Math.Min(Threads, (w.Rows + 3) / 4);
        fixed (float* x = input)
        fixed (float* y = output)
        {
            if (parts <= 1 || work < ParallelThreshold || _inPart)
            {
                RunRows(w, x, y, n, 0, w.Rows);
                return;
            }
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                _jobW = w;
                _jobInput = x;
                _jobOutput = y;
                _jobN = n;
                _jobChunk = (((w.Rows + parts - 1) / parts) + 3) & ~3;
                parts = (w.Rows + _jobChunk - 1) / _jobChunk;
                try
                {
                    RunPooled(_part, parts);
                }
                finally
                {
                    _jobW = null;
                    _jobInput = null;
                    _jobOutput = null;
                }
            }
        }
    }

    public void ParallelFor(int count, Action<int, int> body, int grain = 1)
    {
        KernelChecks.ParallelFor(count, body, grain);
        if (count == 0)
        {
            return;
        }
        var parts = (int)Math.Min(Threads, ((long)count + grain - 1) / grain);
        if (parts <= 1 || _inPart)
        {
            for (var start = 0; start < count; start += grain)
            {
                body(start, Math.Min(count, start + grain));
            }
            return;
        }
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _forBody = body;
            _forCount = count;
            _forGrain = grain;
            _forNext = 0;
            try
            {
                RunPooled(_forPart, parts);
            }
            finally
            {
                _forBody = null;
            }
        }
    }

    /// <summary>Runs part(0 … parts-1) on the pool (caller = part 0); holds <see cref="_gate"/>.</summary>
    private void RunPooled(Action<int> part, int parts)
    {
        if (_mode == ParallelMode.ParallelFor)
        {
            Parallel.For(0, parts, part);
        }
        else
        {
            _pool ??= new WorkerPool(Threads - 1);
            _pool.Run(part, parts);
        }
    }

    private void RunForPart(int part)
    {
        var body = _forBody!;
        int count = _forCount, grain = _forGrain;
        var wasInPart = _inPart;
        _inPart = true;
        try
        {
            while (true)
            {
                var start = Interlocked.Add(ref _forNext, grain) - grain;
                if (start >= count || start < 0)
                {
                    return;
                }
                body(start, Math.Min(count, start + grain));
            }
        }
        finally
        {
            _inPart = wasInPart;
        }
    }

    private bool _disposed;

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _pool?.Dispose();
            _pool = null;
        }
    }

    private void RunPart(int part)
    {
        var w = _jobW!;
        var r0 = part * _jobChunk;
        var r1 = Math.Min(w.Rows, r0 + _jobChunk);
        if (r0 < r1)
        {
            var wasInPart = _inPart;
            _inPart = true;
            try
            {
                RunRows(w, _jobInput, _jobOutput, _jobN, r0, r1);
            }
            finally
            {
                _inPart = wasInPart;
            }
        }
    }

    private static void RunRows(WeightTensor w, float* x, float* y, int n, int r0, int r1)
    {
        if (n == 1)
        {
            switch (w.Type)
            {
                case TensorType.F32:
                    Rows1<F32Loader>(w, x, y, r0, r1);
                    break;
                case TensorType.F16:
                    Rows1<F16Loader>(w, x, y, r0, r1);
                    break;
                case TensorType.BF16:
                    Rows1<BF16Loader>(w, x, y, r0, r1);
                    break;
                default:
                    Rows1<Q8Loader>(w, x, y, r0, r1);
                    break;
            }
            return;
        }
        var cols = w.Cols;
        var rb = w.RowBytes;
        if (w.Type == TensorType.F32)
        {
            var r = r0;
            for (; r + 4 <= r1; r += 4)
            {
                Tile4Batch(w.Data + (r * rb), rb, x, cols, n, y + r, w.Rows);
            }
            for (; r < r1; r++)
            {
                Row1Batch((float*)(w.Data + (r * rb)), x, cols, n, y + r, w.Rows);
            }
            return;
        }
        var needed = 4 * cols;
        if (_threadScratch is null || _threadScratch.Length < needed)
        {
            _threadScratch = GC.AllocateUninitializedArray<float>(Math.Max(needed, 4 * 4096), pinned: true);
        }
        var buf = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_threadScratch));
        var decodedStride = (long)cols * sizeof(float);
        {
            var r = r0;
            for (; r + 4 <= r1; r += 4)
            {
                for (var i = 0; i < 4; i++)
                {
                    RowDecoder.Decode(w.Type, w.Data + ((r + i) * rb), buf + (i * cols), cols);
                }
                Tile4Batch((byte*)buf, decodedStride, x, cols, n, y + r, w.Rows);
            }
            for (; r < r1; r++)
            {
                RowDecoder.Decode(w.Type, w.Data + (r * rb), buf, cols);
                Row1Batch(buf, x, cols, n, y + r, w.Rows);
            }
        }
    }

    private static void Rows1<TL>(WeightTensor w, float* x, float* y, int r0, int r1)
        where TL : IWeightLoader
    {
        var rb = w.RowBytes;
        var cols = w.Cols;
        var r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            Dot4<TL>(w.Data + (r * rb), rb, x, cols, y + r);
        }
        for (; r < r1; r++)
        {
            y[r] = Dot1<TL>(w.Data + (r * rb), x, cols);
        }
    }

    /// <summary>Four F32 rows (stride <paramref name="rb"/> bytes) against n inputs; y[j × yStride + i].</summary>
    private static void Tile4Batch(byte* rows, long rb, float* x, int cols, int n, float* y, int yStride)
    {
        var j = 0;
        for (; j + 2 <= n; j += 2)
        {
            Dot4x2(rows, rb, x + ((long)j * cols), x + ((long)(j + 1) * cols), cols, y + ((long)j * yStride), y + ((long)(j + 1) * yStride));
        }
        if (j < n)
        {
            Dot4<F32Loader>(rows, rb, x + ((long)j * cols), cols, y + ((long)j * yStride));
        }
    }

    private static void Row1Batch(float* row, float* x, int cols, int n, float* y, int yStride)
    {
        for (var j = 0; j < n; j++)
        {
            y[(long)j * yStride] = Dot1<F32Loader>((byte*)row, x + ((long)j * cols), cols);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot1<TL>(byte* row, float* x, int cols)
        where TL : IWeightLoader
    {
        var c = 0;
        var sum = 0f;
        if (Simd.Use512)
        {
            Vector512<float> a0 = default, a1 = default;
            for (; c + 32 <= cols; c += 32)
            {
                a0 = Vector512.MultiplyAddEstimate(TL.Load512(row, c), Vector512.Load(x + c), a0);
                a1 = Vector512.MultiplyAddEstimate(TL.Load512(row, c + 16), Vector512.Load(x + c + 16), a1);
            }
            for (; c + 16 <= cols; c += 16)
            {
                a0 = Vector512.MultiplyAddEstimate(TL.Load512(row, c), Vector512.Load(x + c), a0);
            }
            sum = Vector512.Sum(a0 + a1);
        }
        else if (Simd.Use256)
        {
            Vector256<float> a0 = default, a1 = default;
            for (; c + 16 <= cols; c += 16)
            {
                a0 = Vector256.MultiplyAddEstimate(TL.Load256(row, c), Vector256.Load(x + c), a0);
                a1 = Vector256.MultiplyAddEstimate(TL.Load256(row, c + 8), Vector256.Load(x + c + 8), a1);
            }
            for (; c + 8 <= cols; c += 8)
            {
                a0 = Vector256.MultiplyAddEstimate(TL.Load256(row, c), Vector256.Load(x + c), a0);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; c < cols; c++)
        {
            sum += TL.LoadScalar(row, c) * x[c];
        }
        return sum;
    }

    /// <summary>Rows r0..r0+3 (stride <paramref name="rb"/> bytes) dotted with x; results to y[0..3].</summary>
    private static void Dot4<TL>(byte* r0, long rb, float* x, int cols, float* y)
        where TL : IWeightLoader
    {
        byte* r1 = r0 + rb, r2 = r1 + rb, r3 = r2 + rb;
        var c = 0;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (Simd.Use512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; c + 16 <= cols; c += 16)
            {
                var xv = Vector512.Load(x + c);
                a0 = Vector512.MultiplyAddEstimate(TL.Load512(r0, c), xv, a0);
                a1 = Vector512.MultiplyAddEstimate(TL.Load512(r1, c), xv, a1);
                a2 = Vector512.MultiplyAddEstimate(TL.Load512(r2, c), xv, a2);
                a3 = Vector512.MultiplyAddEstimate(TL.Load512(r3, c), xv, a3);
            }
            s0 = Vector512.Sum(a0);
            s1 = Vector512.Sum(a1);
            s2 = Vector512.Sum(a2);
            s3 = Vector512.Sum(a3);
        }
        else if (Simd.Use256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; c + 8 <= cols; c += 8)
            {
                var xv = Vector256.Load(x + c);
                a0 = Vector256.MultiplyAddEstimate(TL.Load256(r0, c), xv, a0);
                a1 = Vector256.MultiplyAddEstimate(TL.Load256(r1, c), xv, a1);
                a2 = Vector256.MultiplyAddEstimate(TL.Load256(r2, c), xv, a2);
                a3 = Vector256.MultiplyAddEstimate(TL.Load256(r3, c), xv, a3);
            }
            s0 = Vector256.Sum(a0);
            s1 = Vector256.Sum(a1);
            s2 = Vector256.Sum(a2);
            s3 = Vector256.Sum(a3);
        }
        for (; c < cols; c++)
        {
            var xv = x[c];
            s0 += TL.LoadScalar(r0, c) * xv;
            s1 += TL.LoadScalar(r1, c) * xv;
            s2 += TL.LoadScalar(r2, c) * xv;
            s3 += TL.LoadScalar(r3, c) * xv;
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }

    /// <summary>Four F32 rows × two inputs (8 accumulators); results to ya[0..3] and yb[0..3].</summary>
    private static void Dot4x2(byte* rows, long rb, float* xa, float* xb, int cols, float* ya, float* yb)
    {
        var r0 = (float*)rows;
        var r1 = (float*)(rows + rb);
        var r2 = (float*)(rows + (2 * rb));
        var r3 = (float*)(rows + (3 * rb));
        var c = 0;
        float a0s = 0, a1s = 0, a2s = 0, a3s = 0, b0s = 0, b1s = 0, b2s = 0, b3s = 0;
        if (Simd.Use512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (; c + 16 <= cols; c += 16)
            {
                var xa16 = Vector512.Load(xa + c);
                var xb16 = Vector512.Load(xb + c);
                var w = Vector512.Load(r0 + c);
                a0 = Vector512.MultiplyAddEstimate(w, xa16, a0);
                b0 = Vector512.MultiplyAddEstimate(w, xb16, b0);
                w = Vector512.Load(r1 + c);
                a1 = Vector512.MultiplyAddEstimate(w, xa16, a1);
                b1 = Vector512.MultiplyAddEstimate(w, xb16, b1);
                w = Vector512.Load(r2 + c);
                a2 = Vector512.MultiplyAddEstimate(w, xa16, a2);
                b2 = Vector512.MultiplyAddEstimate(w, xb16, b2);
                w = Vector512.Load(r3 + c);
                a3 = Vector512.MultiplyAddEstimate(w, xa16, a3);
                b3 = Vector512.MultiplyAddEstimate(w, xb16, b3);
            }
            a0s = Vector512.Sum(a0);
            a1s = Vector512.Sum(a1);
            a2s = Vector512.Sum(a2);
            a3s = Vector512.Sum(a3);
            b0s = Vector512.Sum(b0);
            b1s = Vector512.Sum(b1);
            b2s = Vector512.Sum(b2);
            b3s = Vector512.Sum(b3);
        }
        else if (Simd.Use256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            for (; c + 8 <= cols; c += 8)
            {
                var xa8 = Vector256.Load(xa + c);
                var xb8 = Vector256.Load(xb + c);
                var w = Vector256.Load(r0 + c);
                a0 = Vector256.MultiplyAddEstimate(w, xa8, a0);
                b0 = Vector256.MultiplyAddEstimate(w, xb8, b0);
                w = Vector256.Load(r1 + c);
                a1 = Vector256.MultiplyAddEstimate(w, xa8, a1);
                b1 = Vector256.MultiplyAddEstimate(w, xb8, b1);
                w = Vector256.Load(r2 + c);
                a2 = Vector256.MultiplyAddEstimate(w, xa8, a2);
                b2 = Vector256.MultiplyAddEstimate(w, xb8, b2);
                w = Vector256.Load(r3 + c);
                a3 = Vector256.MultiplyAddEstimate(w, xa8, a3);
                b3 = Vector256.MultiplyAddEstimate(w, xb8, b3);
            }
            a0s = Vector256.Sum(a0);
            a1s = Vector256.Sum(a1);
            a2s = Vector256.Sum(a2);
            a3s = Vector256.Sum(a3);
            b0s = Vector256.Sum(b0);
            b1s = Vector256.Sum(b1);
            b2s = Vector256.Sum(b2);
            b3s = Vector256.Sum(b3);
        }
        for (; c < cols; c++)
        {
            float xav = xa[c], xbv = xb[c];
            a0s += r0[c] * xav;
            a1s += r1[c] * xav;
            a2s += r2[c] * xav;
            a3s += r3[c] * xav;
            b0s += r0[c] * xbv;
            b1s += r1[c] * xbv;
            b2s += r2[c] * xbv;
            b3s += r3[c] * xbv;
        }
        ya[0] = a0s;
        ya[1] = a1s;
        ya[2] = a2s;
        ya[3] = a3s;
        yb[0] = b0s;
        yb[1] = b1s;
        yb[2] = b2s;
        yb[3] = b3s;
    }

    public void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> output)
    {
        KernelChecks.SameLength(x, weight, output);
        if (x.IsEmpty)
        {
            return;
        }
        var ss = TensorPrimitives.SumOfSquares(x);
        var scale = 1f / MathF.Sqrt((ss / x.Length) + eps);
        TensorPrimitives.Multiply(x, weight, output);
        TensorPrimitives.Multiply(output, scale, output);
    }

    public void Softmax(Span<float> x)
    {
        if (x.IsEmpty)
        {
            return;
        }
        var max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        var sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Multiply(x, 1f / sum, x);
    }

    public float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        KernelChecks.SameLength(a, b);
        return TensorPrimitives.Dot(a, b);
    }

    public void MultiplyAdd(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        KernelChecks.SameLength(x, y);
        TensorPrimitives.MultiplyAdd(x, a, y, y);
    }

    public void SiluMultiply(Span<float> gate, ReadOnlySpan<float> up)
    {
        KernelChecks.SameLength(gate, up);
        var count = gate.Length;
        fixed (float* g = gate)
        fixed (float* u = up)
        {
            var i = 0;
            if (Simd.Use512)
            {
                for (; i + 16 <= count; i += 16)
                {
                    var gv = Vector512.Load(g + i);
                    var silu = gv / (Vector512<float>.One + Vector512.Exp(-gv));
                    (silu * Vector512.Load(u + i)).Store(g + i);
                }
            }
            else if (Simd.Use256)
            {
                for (; i + 8 <= count; i += 8)
                {
                    var gv = Vector256.Load(g + i);
                    var silu = gv / (Vector256<float>.One + Vector256.Exp(-gv));
                    (silu * Vector256.Load(u + i)).Store(g + i);
                }
            }
            for (; i < count; i++)
            {
                var gv = g[i];
                g[i] = gv / (1f + MathF.Exp(-gv)) * u[i];
            }
        }
    }
}
