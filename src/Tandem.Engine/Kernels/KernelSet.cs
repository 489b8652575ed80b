namespace Tandem.Engine.Kernels;

/// <summary>Creates kernel sets by name.</summary>
public static class KernelSet
{
    public const string ReferenceName = "reference";
    public const string OptimizedName = "optimized";

    public static IReadOnlyList<string> Names { get; } = [ReferenceName, OptimizedName];

    /// <summary>The scalar specification (shared, stateless).</summary>
    public static IKernels Reference => ReferenceKernels.Instance;

    /// <summary>
    /// SIMD kernels whose MatMul uses up to <paramref name="threads"/> threads (0 = <see cref="Environment.ProcessorCount"/>).
    /// The result implements <see cref="IDisposable"/>; disposing it stops its worker threads (they are background threads,
    /// so a process may also just exit).
    /// </summary>
    public static IKernels CreateOptimized(int threads = 0) => new OptimizedKernels(threads);

    /// <summary>The kernel set called <paramref name="name"/> ("reference" or "optimized", case-insensitive).</summary>
    public static IKernels Create(string name, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.ToLowerInvariant() switch
        {
            ReferenceName => Reference,
            OptimizedName => CreateOptimized(threads),
            _ => throw new ArgumentException($"unknown kernel set '{name}'; valid names: {string.Join(", ", Names)}", nameof(name)),
        };
    }

    /// <summary>The instruction set the optimized kernels use on this machine: avx512, avx2+fma or scalar.</summary>
    public static string SimdLevel => Simd.Describe;
}
