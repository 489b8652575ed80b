using BenchmarkDotNet.Running;

namespace Tandem.Benchmarks;

internal static class Program
{
    /// <summary>
    /// BenchmarkDotNet by default; <c>quick-forward [runs]</c> times the forward benchmarks with a plain stopwatch loop
    /// (median of runs, allocated bytes per call) for fast iteration on a busy machine.
    /// </summary>
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "quick-forward")
        {
            QuickForward.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 9);
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
