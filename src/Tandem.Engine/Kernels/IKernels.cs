using Tandem.Engine.Tensors;

namespace Tandem.Engine.Kernels;

/// <summary>
/// The numeric primitives of the forward pass. the reference set is plain scalar code kept
/// as the specification; the optimized set must agree with it within float rounding.
/// </summary>
public interface IKernels
{
    string Name { get; }

    /// <summary>output[n, w.Rows] = input[n, w.Cols] · wᵀ for any weight type (F32, F16, BF16, Q8_0).</summary>
    void MatMul(WeightTensor w, ReadOnlySpan<float> input, Span<float> output, int n);

    /// <summary>output[i] = x[i] / sqrt(mean(x²) + eps) × weight[i] for one vector.</summary>
    void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> output);

    /// <summary>In-place softmax.</summary>
    void Softmax(Span<float> x);

    float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b);

    /// <summary>y += a × x.</summary>
    void MultiplyAdd(float a, ReadOnlySpan<float> x, Span<float> y);

    /// <summary>gate[i] = silu(gate[i]) × up[i] (SwiGLU).</summary>
    void SiluMultiply(Span<float> gate, ReadOnlySpan<float> up);

    /// <summary>
    /// Calls <paramref name="body"/>(start, end) for disjoint ranges that together cover [0, <paramref name="count"/>), each at
    /// most <paramref name="grain"/> long. The optimized set hands ranges out dynamically to its worker threads (the caller
    /// included), so the items must be independent; the reference set runs them in order on the calling thread. The body
    /// may call this kernel set's other methods (nested MatMul/ParallelFor then run on the current thread). No allocation:
    /// pass a delegate created once, not a fresh lambda.
    /// </summary>
    void ParallelFor(int count, Action<int, int> body, int grain = 1);
}
