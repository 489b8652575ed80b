namespace Tandem.Bench.Workloads;

/// <summary>Deterministic seed derivation (SplitMix64); <see cref="HashCode"/> is randomized per process and unusable here.</summary>
internal static class Seeds
{
    public const long Prefix = 0x5052_4546;
    public const long Tail = 0x5441_494C;
    public const long Warmup = 0x5741_524D;

    public static int Mix(long a, long b, long c = 0)
    {
        var x = Step(Step(Step((ulong)a) ^ (ulong)b) ^ (ulong)c);
        return (int)(x ^ (x >> 32));
    }

    private static ulong Step(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
