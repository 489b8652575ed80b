using BenchmarkDotNet.Attributes;
using Tandem.Engine.Inference;
using Tandem.Engine.Kernels;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Benchmarks;

/// <summary>
/// Whole forward steps of a random 110m-preset model (dim 768, 12 layers, vocabulary 512) on the optimized kernels with two
/// threads. <see cref="ForwardBenchmarks"/>: a decode step of <see cref="ForwardBenchmarks.Batch"/> sequences × 1 token, each
/// with 128 tokens already cached (tokens/s = Batch / Mean). <see cref="ForwardPrefillBenchmarks"/>: a 512-token prefill of
/// one sequence (tokens/s = 512 / Mean). Sequence lengths are reset after every call, so each invocation is the same step.
/// Example: <c>dotnet run -c Release --project benchmarks/Tandem.Benchmarks -- --filter '*Forward*' --job short</c>.
/// </summary>
#pragma warning disable CA1001 // BenchmarkDotNet releases everything in [GlobalCleanup]
public abstract class ForwardBenchmarkBase
{
    public const int Context = 128;
    public const int PrefillTokens = 512;

    private ModelWeights? _weights;
    private IKernels? _kernels;
    private PagedKvCache? _cache;
    private float[] _logits = [];

    public static IEnumerable<TensorType> Types => [TensorType.F32, TensorType.F16];

    [ParamsSource(nameof(Types))]
    public TensorType Type { get; set; }

    protected Transformer Model { get; private set; } = null!;

    protected PagedKvCache Cache => _cache!;

    protected KvSequence[] Sequences { get; private set; } = [];

    protected float[] Logits => _logits;

    /// <summary>Builds the model and <paramref name="sequences"/> sequences with <see cref="Context"/> tokens cached each.</summary>
    protected void Build(int sequences, int threads = 2)
    {
        var config = RandomModel.Config(ModelPresets.M110, 512, RopeStyle.Neox);
        _weights = CreateWeights(config, Type);
        _kernels = KernelSet.CreateOptimized(threads);
        Model = new Transformer(config, _weights, _kernels, threads);
        const int blockSize = 16;
        var perSequence = Math.Max(Context, PrefillTokens) + 1;
        _cache = Model.CreateCache((sequences * ((perSequence / blockSize) + 1)) + 1, blockSize);
        Sequences = new KvSequence[sequences];
        var rng = new Random(7);
        for (var i = 0; i < sequences; i++)
        {
            Sequences[i] = new KvSequence();
            if (!Sequences[i].TryReserve(_cache, perSequence))
            {
                throw new InvalidOperationException("cache too small");
            }
            Model.Forward(_cache, [new ForwardChunk(Sequences[i], RandomTokens(rng, Context, config.VocabSize), false)], []);
        }
        _logits = new float[Math.Max(sequences, 1) * config.VocabSize];
    }

    protected static int[] RandomTokens(Random rng, int count, int vocab)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var tokens = new int[count];
        for (var t = 0; t < count; t++)
        {
            tokens[t] = rng.Next(vocab);
        }
        return tokens;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache?.Dispose();
        (_kernels as IDisposable)?.Dispose();
        _weights?.Dispose();
    }

    internal static unsafe ModelWeights CreateWeights(ModelConfig config, TensorType matrixType)
    {
        var tensors = new List<WeightTensor>();
        var owners = new List<IDisposable>();
        foreach (var t in RandomModel.Tensors(config, 1))
        {
            var type = t.Shape.Length == 2 && t.Name != "token_embd.weight" ? matrixType : TensorType.F32;
            var rows = t.Shape.Length == 2 ? (int)t.Shape[0] : 1;
            var cols = (int)t.Shape[^1];
            var buffer = NativeTensorBuffer.FromFloats(t.Name, type, rows, cols, t.Values);
            owners.Add(buffer);
            tensors.Add(t.Shape.Length == 2 ? buffer.Tensor : new WeightTensor(t.Name, type, t.Shape, buffer.Tensor.Data, buffer.Tensor.ByteLength));
        }
        return new ModelWeights("memory", tensors, owners);
    }
}

/// <summary>One decode step of <see cref="Batch"/> sequences (1 token each, 128 cached).</summary>
[MemoryDiagnoser]
public class ForwardBenchmarks : ForwardBenchmarkBase
{
    private ForwardChunk[] _chunks = [];

    [Params(1, 4, 16, 32)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        Build(Batch);
        var rng = new Random(11);
        _chunks = new ForwardChunk[Batch];
        for (var i = 0; i < Batch; i++)
        {
            _chunks[i] = new ForwardChunk(Sequences[i], RandomTokens(rng, 1, Model.Config.VocabSize));
        }
    }

    [Benchmark]
    public void DecodeStep()
    {
        Model.Forward(Cache, _chunks, Logits);
        for (var i = 0; i < _chunks.Length; i++)
        {
            Sequences[i].Length = Context;
        }
    }
}

/// <summary>A 512-token prefill of one sequence from position 0.</summary>
[MemoryDiagnoser]
public class ForwardPrefillBenchmarks : ForwardBenchmarkBase
{
    private ForwardChunk[] _chunks = [];

    [GlobalSetup]
    public void Setup()
    {
        Build(1);
        _chunks = [new ForwardChunk(Sequences[0], RandomTokens(new Random(13), PrefillTokens, Model.Config.VocabSize))];
    }

    [Benchmark]
    public void Prefill512()
    {
        Sequences[0].Length = 0;
        Model.Forward(Cache, _chunks, Logits);
    }
}
#pragma warning restore CA1001
