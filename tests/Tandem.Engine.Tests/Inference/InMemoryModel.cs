using System.Runtime.InteropServices;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests.Inference;

/// <summary>Random-weight models held in native memory (no files), for engine-versus-reference tests of every architecture feature.</summary>
internal static unsafe class InMemoryModel
{
    public static ModelConfig Config(
        string arch = "llama", int dim = 48, int layers = 2, int heads = 6, int kvHeads = 2, int ffn = 80, int vocab = 97,
        RopeStyle rope = RopeStyle.Neox, bool bias = false, bool qkNorm = false, bool tied = false, RopeScaling? scaling = null, int context = 256) => new()
        {
            Architecture = arch,
            HiddenSize = dim,
            IntermediateSize = ffn,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = dim / heads,
            VocabSize = vocab,
            ContextLength = context,
            RopeStyle = rope,
            AttentionBias = bias,
            QkNorm = qkNorm,
            TiedEmbeddings = tied,
            RopeScaling = scaling,
            RopeTheta = 10000f,
        };

    /// <summary>Weights of <paramref name="config"/>; matrices (2-D tensors but embeddings) encoded as <paramref name="matrixType"/>.</summary>
    public static ModelWeights Create(ModelConfig config, ulong seed, TensorType matrixType = TensorType.F32)
    {
        var tensors = new List<WeightTensor>();
        var owners = new List<IDisposable>();
        foreach (var t in RandomModel.Tensors(config, seed))
        {
            var type = t.Shape.Length == 2 && (t.Shape[1] % 32 == 0 || matrixType != TensorType.Q8_0) ? matrixType : TensorType.F32;
            var bytes = TensorConversion.Quantize(type, t.Values);
            var native = new NativeBytes(bytes);
            owners.Add(native);
            tensors.Add(new WeightTensor(t.Name, type, t.Shape, native.Pointer, bytes.Length));
        }
        return new ModelWeights("memory", tensors, owners);
    }

    private sealed class NativeBytes : IDisposable
    {
        public NativeBytes(byte[] bytes)
        {
            Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes.Length, 1), 64);
            bytes.CopyTo(new Span<byte>(Pointer, bytes.Length));
        }

        public byte* Pointer { get; private set; }

        public void Dispose()
        {
            if (Pointer != null)
            {
                NativeMemory.AlignedFree(Pointer);
                Pointer = null;
            }
        }
    }
}
