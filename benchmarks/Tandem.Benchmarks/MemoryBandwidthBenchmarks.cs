using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;

namespace Tandem.Benchmarks;

/// <summary>
/// Streams a 512 MiB native buffer of floats (summing them with four vector accumulators) on 1 or 2 threads: the
/// read-bandwidth ceiling for decode, whose MatMuls read every weight once per token.
/// Bandwidth in GB/s = <see cref="BufferBytes"/> / Mean = 536,870,912 bytes / (Mean in ns) — e.g. a mean of 40 ms
/// is 536,870,912 / 40,000,000 ns = 13.4 GB/s (10⁹ bytes per second; 12.5 GiB/s).
/// </summary>
public unsafe class MemoryBandwidthBenchmarks
{
    public const long BufferBytes = 512L * 1024 * 1024;

    private float* _data;

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = (float*)NativeMemory.AlignedAlloc((nuint)BufferBytes, 64);
        var count = BufferBytes / sizeof(float);
        for (long i = 0; i < count; i++)
        {
            _data[i] = i & 7;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_data);
        _data = null;
    }

    [Benchmark]
    public float SumFloats()
    {
        var count = BufferBytes / sizeof(float);
        if (Threads == 1)
        {
            return Sum(_data, count);
        }
        var partial = new float[Threads];
        var chunk = count / Threads;
        var data = _data;
        Parallel.For(0, Threads, t => partial[t] = Sum(data + (t * chunk), t == Threads - 1 ? count - (t * chunk) : chunk));
        return partial.Sum();
    }

    private static float Sum(float* p, long count)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        long i = 0;
        for (; i + 32 <= count; i += 32)
        {
            a0 += Vector256.Load(p + i);
            a1 += Vector256.Load(p + i + 8);
            a2 += Vector256.Load(p + i + 16);
            a3 += Vector256.Load(p + i + 24);
        }
        var sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        for (; i < count; i++)
        {
            sum += p[i];
        }
        return sum;
    }
}
