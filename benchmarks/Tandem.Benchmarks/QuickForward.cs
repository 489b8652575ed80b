using System.Diagnostics;
using System.Globalization;
using Tandem.Engine.Tensors;

namespace Tandem.Benchmarks;

/// <summary>Stopwatch timing of <see cref="ForwardBenchmarks"/> and <see cref="ForwardPrefillBenchmarks"/>: median of runs, tokens/s, bytes allocated per call.</summary>
internal static class QuickForward
{
    public static void Run(int runs)
    {
        var types = Environment.GetEnvironmentVariable("QUICK_TYPES")?.Split(',') ?? ["F32", "F16"];
        foreach (var name in types)
        {
            var type = Enum.Parse<TensorType>(name, ignoreCase: true);
            foreach (var batch in new[] { 1, 4, 16, 32 })
            {
                var b = new ForwardBenchmarks { Type = type, Batch = batch };
                b.Setup();
                var (median, bytes) = Time(b.DecodeStep, runs * 3);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{type,-5} decode batch {batch,2}: {median * 1e3,8:F2} ms  {batch / median,8:F1} tokens/s  {bytes,6} B/call"));
                b.Cleanup();
            }
            var p = new ForwardPrefillBenchmarks { Type = type };
            p.Setup();
            var (pm, pb) = Time(p.Prefill512, runs);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{type,-5} prefill 512:     {pm * 1e3,8:F2} ms  {512 / pm,8:F1} tokens/s  {pb,6} B/call"));
            p.Cleanup();
        }
    }

    private static (double Median, long Bytes) Time(Action step, int runs)
    {
        // Warm up past tiered JIT compilation: at least 3 calls and 2 seconds.
        var warm = Stopwatch.StartNew();
        for (var i = 0; i < 3 || warm.Elapsed.TotalSeconds < 2; i++)
        {
            step();
        }
        var before = GC.GetAllocatedBytesForCurrentThread();
        step();
        var bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        var times = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return (times[runs / 2], bytes);
    }
}
