using Tandem.Engine.Kernels;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Inference;

/// <summary>
/// The llama-family forward pass (Llama 1/2/3, Mistral, Qwen2, Qwen3) over a paged KV cache.
/// One call runs any mix of prefill chunks and decode tokens of different sequences together: every
/// projection is one matrix-matrix product over all tokens of the step, attention reads each sequence's
/// blocks through its block table. Not thread-safe: one engine loop owns an instance (scratch buffers are reused).
/// </summary>
public sealed unsafe class Transformer
{
    private readonly ModelWeights _weights;
    private readonly IKernels _kernels;
    private readonly Layer[] _layers;
    private readonly WeightTensor _embedding;
    private readonly WeightTensor _output;
    private readonly float[] _outputNorm;
    private readonly RotaryEmbedding _rope;
    private readonly float _attentionScale;
    private readonly Action<int, int> _attendTiles;
    private readonly bool _fastAttention;
    [ThreadStatic]
    private static float[]? _threadScores;
    private Scratch _scratch = new(0, 0);

    // The attention job in flight (set by Attention, read by the pool's threads through _attendTiles).
    private PagedKvCache? _jobCache;
    private IReadOnlyList<ForwardChunk>? _jobChunks;
    private int _jobLayer;

    /// <param name="config">Model shape.</param>
    /// <param name="weights">Weights of <paramref name="config"/>.</param>
    /// <param name="kernels">Kernel set; attention runs on its <see cref="IKernels.ParallelFor"/> (the optimized set's worker pool).</param>
    /// <param name="threads">Unused since attention shares the kernels' threads (set the thread count on the kernel set); kept for compatibility.</param>
    public Transformer(ModelConfig config, ModelWeights weights, IKernels kernels, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        Config = config;
        _weights = weights;
        _kernels = kernels;
        _attendTiles = AttendTiles;
        _fastAttention = kernels is OptimizedKernels;
        _embedding = weights.Get("token_embd.weight");
        _output = config.TiedEmbeddings ? _embedding : weights.Get("output.weight");
        _outputNorm = TensorConversion.ToFloat(weights.Get("output_norm.weight"));
        var freqs = weights.TryGet("rope_freqs.weight");
        _rope = new RotaryEmbedding(config, freqs is null ? null : TensorConversion.ToFloat(freqs));
        _attentionScale = 1f / MathF.Sqrt(config.HeadDim);
        _layers = new Layer[config.NumLayers];
        for (var i = 0; i < _layers.Length; i++)
        {
            _layers[i] = new Layer(weights, i);
        }
    }

    public ModelConfig Config { get; }

    public IKernels Kernels => _kernels;

    /// <summary>Bytes of weights read per decode step (all layers plus the output projection).</summary>
    public long WeightBytesPerToken =>
        _layers.Sum(l => l.Wq.ByteLength + l.Wk.ByteLength + l.Wv.ByteLength + l.Wo.ByteLength + l.Gate.ByteLength + l.Up.ByteLength + l.Down.ByteLength)
        + _output.ByteLength;

    /// <summary>A cache shaped for this model; in a file of <paramref name="sharedMemoryDirectory"/> when given (see <see cref="KvSlab"/>).</summary>
    public PagedKvCache CreateCache(int numBlocks, int blockSize = 16, string? sharedMemoryDirectory = null) =>
        new(Config.NumLayers, Config.NumKvHeads, Config.HeadDim, blockSize, numBlocks, sharedMemoryDirectory);

    /// <summary>
    /// Runs the chunks, writes their keys/values into <paramref name="cache"/>, advances each sequence's Length,
    /// and writes next-token logits [chunks wanting logits, vocab] into <paramref name="logits"/> in chunk order.
    /// Callers reserve cache room first (<see cref="KvSequence.TryReserve"/>); each sequence may appear once.
    /// </summary>
    public void Forward(PagedKvCache cache, IReadOnlyList<ForwardChunk> chunks, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(chunks);
        var c = Config;
        var total = 0;
        var logitRows = 0;
        for (var i = 0; i < chunks.Count; i++)
        {
            var ch = chunks[i];
            if (ch.Tokens.Length == 0)
            {
                throw new ArgumentException($"chunk {i} has no tokens", nameof(chunks));
            }
            if (ch.Sequence.Length + ch.Tokens.Length > ch.Sequence.Blocks.Count * cache.BlockSize)
            {
                throw new InvalidOperationException($"chunk {i}: the sequence has no cache room reserved for {ch.Tokens.Length} more tokens");
            }
            if (ch.Sequence.Length + ch.Tokens.Length > Config.ContextLength)
            {
                throw new ArgumentException($"chunk {i}: {ch.Sequence.Length + ch.Tokens.Length} positions exceed the model's context length {Config.ContextLength}", nameof(chunks));
            }
            for (var j = 0; j < i; j++)
            {
                if (ReferenceEquals(chunks[j].Sequence, ch.Sequence))
                {
                    throw new ArgumentException("a sequence appears twice in one forward step", nameof(chunks));
                }
            }
            total += ch.Tokens.Length;
            logitRows += ch.WantLogits ? 1 : 0;
        }
        if (logits.Length < logitRows * c.VocabSize)
        {
            throw new ArgumentException($"logits needs room for {logitRows} × {c.VocabSize} values", nameof(logits));
        }
        if (cache.KvDim != c.KvDim || cache.NumLayers != c.NumLayers)
        {
            throw new ArgumentException("the cache was made for a different model shape", nameof(cache));
        }

        var s = EnsureScratch(total);
        var dim = c.HiddenSize;

        // Token table: which chunk each row belongs to and its absolute position.
        var row = 0;
        var maxPosition = 0;
        for (var i = 0; i < chunks.Count; i++)
        {
            var tokens = chunks[i].Tokens.Span;
            for (var j = 0; j < tokens.Length; j++, row++)
            {
                var id = tokens[j];
                if ((uint)id >= (uint)c.VocabSize)
                {
                    throw new ArgumentOutOfRangeException(nameof(chunks), id, $"token id outside the vocabulary of {c.VocabSize}");
                }
                s.Chunk[row] = i;
                s.Position[row] = chunks[i].Sequence.Length + j;
                maxPosition = Math.Max(maxPosition, s.Position[row]);
                TensorConversion.DequantizeRow(_embedding, id, s.X.AsSpan(row * dim, dim));
                _rope.Angles(s.Position[row], s.Cos.AsSpan(row * _rope.Pairs, _rope.Pairs), s.Sin.AsSpan(row * _rope.Pairs, _rope.Pairs));
            }
        }

        // Attention tiles: up to TileRows (token, head) rows of one chunk that share a kv head, so each key and value
        // loaded is used for all of them. Prefill: consecutive tokens; GQA: the heads of one group.
        var group = c.NumHeads / c.NumKvHeads;
        var tileTokens = Math.Max(1, TileRows / group);
        s.TileCount = 0;
        s.ScoreStride = (maxPosition + 16) & ~15;
        row = 0;
        for (var i = 0; i < chunks.Count; i++)
        {
            var n = chunks[i].Tokens.Length;
            for (var kvh = 0; kvh < c.NumKvHeads; kvh++)
            {
                for (var j = 0; j < n; j += tileTokens)
                {
                    s.TileToken[s.TileCount] = row + j;
                    s.TileTokens[s.TileCount] = Math.Min(tileTokens, n - j);
                    s.TileKvHead[s.TileCount] = kvh;
                    s.TileCount++;
                }
            }
            row += n;
        }

        for (var l = 0; l < _layers.Length; l++)
        {
            Attention(cache, chunks, l, total, s);
            FeedForward(l, total, s);
        }

        // Logits for the last token of each chunk that wants them, in one batched product.
        row = 0;
        var outRow = 0;
        for (var i = 0; i < chunks.Count; i++)
        {
            row += chunks[i].Tokens.Length;
            if (chunks[i].WantLogits)
            {
                _kernels.RmsNorm(s.X.AsSpan((row - 1) * dim, dim), _outputNorm, c.RmsNormEps, s.Xb.AsSpan(outRow * dim, dim));
                outRow++;
            }
        }
        if (logitRows > 0)
        {
            _kernels.MatMul(_output, s.Xb.AsSpan(0, logitRows * dim), logits[..(logitRows * c.VocabSize)], logitRows);
        }
        for (var i = 0; i < chunks.Count; i++)
        {
            chunks[i].Sequence.Length += chunks[i].Tokens.Length;
        }
    }

    private void Attention(PagedKvCache cache, IReadOnlyList<ForwardChunk> chunks, int l, int total, Scratch s)
    {
        var c = Config;
        var layer = _layers[l];
        int dim = c.HiddenSize, qDim = c.QDim, kvDim = c.KvDim, hd = c.HeadDim, pairs = _rope.Pairs;
        for (var t = 0; t < total; t++)
        {
            _kernels.RmsNorm(s.X.AsSpan(t * dim, dim), layer.AttnNorm, c.RmsNormEps, s.Xb.AsSpan(t * dim, dim));
        }
        var xb = s.Xb.AsSpan(0, total * dim);
        _kernels.MatMul(layer.Wq, xb, s.Q.AsSpan(0, total * qDim), total);
        _kernels.MatMul(layer.Wk, xb, s.K.AsSpan(0, total * kvDim), total);
        _kernels.MatMul(layer.Wv, xb, s.V.AsSpan(0, total * kvDim), total);

        for (var t = 0; t < total; t++)
        {
            var q = s.Q.AsSpan(t * qDim, qDim);
            var k = s.K.AsSpan(t * kvDim, kvDim);
            var v = s.V.AsSpan(t * kvDim, kvDim);
            if (layer.Bq is not null)
            {
                AddInPlace(q, layer.Bq);
                AddInPlace(k, layer.Bk!);
                AddInPlace(v, layer.Bv!);
            }
            if (layer.QNorm is not null)
            {
                NormHeads(q, c.NumHeads, layer.QNorm);
                NormHeads(k, c.NumKvHeads, layer.KNorm!);
            }
            var cos = s.Cos.AsSpan(t * pairs, pairs);
            var sin = s.Sin.AsSpan(t * pairs, pairs);
            _rope.Apply(q, c.NumHeads, cos, sin);
            _rope.Apply(k, c.NumKvHeads, cos, sin);

            // Store this token's key and value in its sequence's block.
            var seq = chunks[s.Chunk[t]].Sequence;
            var pos = s.Position[t];
            var block = seq.Blocks[pos / cache.BlockSize];
            var slot = (long)(pos % cache.BlockSize) * kvDim;
            k.CopyTo(new Span<float>(cache.Keys(l, block) + slot, kvDim));
            v.CopyTo(new Span<float>(cache.Values(l, block) + slot, kvDim));
        }

        // Causal attention per tile, on the kernels' threads.
        _jobCache = cache;
        _jobChunks = chunks;
        _jobLayer = l;
        try
        {
            _kernels.ParallelFor(s.TileCount, _attendTiles);
        }
        finally
        {
            _jobCache = null;
            _jobChunks = null;
        }

        _kernels.MatMul(layer.Wo, s.Att.AsSpan(0, total * qDim), s.Xb.AsSpan(0, total * dim), total);
        _kernels.MultiplyAdd(1f, s.Xb.AsSpan(0, total * dim), s.X.AsSpan(0, total * dim));
    }

    /// <summary>Query rows handled together by one attention tile (each loaded key/value row is used for all of them).</summary>
    private const int TileRows = AttentionKernel.MaxRows;

    private void AttendTiles(int start, int end)
    {
        var s = _scratch;
        var cache = _jobCache!;
        var chunks = _jobChunks!;
        var c = Config;
        int hd = c.HeadDim, qDim = c.QDim, group = c.NumHeads / c.NumKvHeads;
        var stride = s.ScoreStride;
        var scores = ScoreBuffer(TileRows * stride);
        var rows = stackalloc AttentionRow[TileRows];
        fixed (float* q = s.Q)
        fixed (float* att = s.Att)
        fixed (float* sc = scores)
        {
            for (var tile = start; tile < end; tile++)
            {
                var t0 = s.TileToken[tile];
                var kvh = s.TileKvHead[tile];
                var seq = chunks[s.Chunk[t0]].Sequence;
                var m = 0;
                var tokens = s.TileTokens[tile];
                for (var i = 0; i < tokens; i++)
                {
                    for (var g = 0; g < group; g++)
                    {
                        var offset = ((long)(t0 + i) * qDim) + (((kvh * group) + g) * hd);
                        rows[m] = new AttentionRow(q + offset, att + offset, s.Position[t0 + i]);
                        if (++m == TileRows)
                        {
                            Attend(cache, seq.Blocks, kvh, rows, m, sc, stride);
                            m = 0;
                        }
                    }
                }
                if (m > 0)
                {
                    Attend(cache, seq.Blocks, kvh, rows, m, sc, stride);
                }
            }
        }
    }

    private void Attend(PagedKvCache cache, IReadOnlyList<int> blocks, int kvHead, AttentionRow* rows, int m, float* scores, int stride)
    {
        var hd = Config.HeadDim;
        if (_fastAttention)
        {
            AttentionKernel.Attend(cache, blocks, _jobLayer, kvHead, hd, rows, m, scores, stride, _attentionScale);
            return;
        }
        // Any other kernel set (the reference): one row at a time through its Dot, Softmax and MultiplyAdd.
        var bs = cache.BlockSize;
        for (var i = 0; i < m; i++)
        {
            var pos = rows[i].Position;
            var q = new ReadOnlySpan<float>(rows[i].Query, hd);
            var sc = new Span<float>(scores, pos + 1);
            for (var p = 0; p <= pos; p++)
            {
                var keys = cache.Keys(_jobLayer, blocks[p / bs]) + ((long)(p % bs) * cache.KvDim) + (kvHead * hd);
                sc[p] = _kernels.Dot(q, new ReadOnlySpan<float>(keys, hd)) * _attentionScale;
            }
            _kernels.Softmax(sc);
            var output = new Span<float>(rows[i].Output, hd);
            output.Clear();
            for (var p = 0; p <= pos; p++)
            {
                var values = cache.Values(_jobLayer, blocks[p / bs]) + ((long)(p % bs) * cache.KvDim) + (kvHead * hd);
                _kernels.MultiplyAdd(sc[p], new ReadOnlySpan<float>(values, hd), output);
            }
        }
    }

    /// <summary>This thread's attention-score buffer, reused across tiles, layers and steps (no allocation per step).</summary>
    private static float[] ScoreBuffer(int length)
    {
        if (_threadScores is null || _threadScores.Length < length)
        {
            _threadScores = GC.AllocateUninitializedArray<float>(length, pinned: true);
        }
        return _threadScores;
    }

    private void FeedForward(int l, int total, Scratch s)
    {
        var c = Config;
        var layer = _layers[l];
        int dim = c.HiddenSize, ffn = c.IntermediateSize;
        for (var t = 0; t < total; t++)
        {
            _kernels.RmsNorm(s.X.AsSpan(t * dim, dim), layer.FfnNorm, c.RmsNormEps, s.Xb.AsSpan(t * dim, dim));
        }
        var xb = s.Xb.AsSpan(0, total * dim);
        var gate = s.Gate.AsSpan(0, total * ffn);
        var up = s.Up.AsSpan(0, total * ffn);
        _kernels.MatMul(layer.Gate, xb, gate, total);
        _kernels.MatMul(layer.Up, xb, up, total);
        _kernels.SiluMultiply(gate, up);
        _kernels.MatMul(layer.Down, gate, xb, total);
        _kernels.MultiplyAdd(1f, xb, s.X.AsSpan(0, total * dim));
    }

    private void NormHeads(Span<float> x, int heads, float[] weight)
    {
        var hd = Config.HeadDim;
        Span<float> tmp = stackalloc float[hd];
        for (var h = 0; h < heads; h++)
        {
            var head = x.Slice(h * hd, hd);
            _kernels.RmsNorm(head, weight, Config.RmsNormEps, tmp);
            tmp.CopyTo(head);
        }
    }

    private static void AddInPlace(Span<float> x, ReadOnlySpan<float> bias)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] += bias[i];
        }
    }

    private Scratch EnsureScratch(int tokens)
    {
        var context = Config.ContextLength;
        if (_scratch.Tokens < tokens)
        {
            _scratch = new Scratch(Math.Max(tokens, 1), Config, _rope.Pairs, Math.Max(context, 1));
        }
        return _scratch;
    }

    /// <summary>Per-step work buffers, grown to the largest step seen.</summary>
    private sealed class Scratch
    {
        public Scratch(int tokens, int maxContext)
        {
            Tokens = tokens;
            MaxContext = maxContext;
            X = Xb = Q = K = V = Att = Gate = Up = Cos = Sin = [];
            Chunk = Position = TileToken = TileTokens = TileKvHead = [];
        }

        public Scratch(int tokens, ModelConfig c, int pairs, int maxContext)
        {
            Tokens = tokens;
            MaxContext = maxContext;
            X = new float[tokens * c.HiddenSize];
            Xb = new float[tokens * Math.Max(c.HiddenSize, c.QDim)];
            Q = new float[tokens * c.QDim];
            Att = new float[tokens * c.QDim];
            K = new float[tokens * c.KvDim];
            V = new float[tokens * c.KvDim];
            Gate = new float[tokens * c.IntermediateSize];
            Up = new float[tokens * c.IntermediateSize];
            Cos = new float[tokens * pairs];
            Sin = new float[tokens * pairs];
            Chunk = new int[tokens];
            Position = new int[tokens];
            TileToken = new int[tokens * c.NumKvHeads];
            TileTokens = new int[tokens * c.NumKvHeads];
            TileKvHead = new int[tokens * c.NumKvHeads];
        }

        public int Tokens { get; }
        public int MaxContext { get; }
        public float[] X { get; }
        public float[] Xb { get; }
        public float[] Q { get; }
        public float[] K { get; }
        public float[] V { get; }
        public float[] Att { get; }
        public float[] Gate { get; }
        public float[] Up { get; }
        public float[] Cos { get; }
        public float[] Sin { get; }
        public int[] Chunk { get; }
        public int[] Position { get; }

        /// <summary>Attention tiles of the step: first token row, token count, kv head.</summary>
        public int[] TileToken { get; }
        public int[] TileTokens { get; }
        public int[] TileKvHead { get; }
        public int TileCount { get; set; }

        /// <summary>Floats per row of the attention-score scratch (&gt; the step's largest position, a multiple of 16).</summary>
        public int ScoreStride { get; set; }
    }

    private sealed class Layer
    {
        public Layer(ModelWeights w, int i)
        {
            var p = $"blk.{i}.";
            AttnNorm = TensorConversion.ToFloat(w.Get(p + "attn_norm.weight"));
            Wq = w.Get(p + "attn_q.weight");
            Wk = w.Get(p + "attn_k.weight");
            Wv = w.Get(p + "attn_v.weight");
            Wo = w.Get(p + "attn_output.weight");
            Bq = Optional(w, p + "attn_q.bias");
            Bk = Optional(w, p + "attn_k.bias");
            Bv = Optional(w, p + "attn_v.bias");
            QNorm = Optional(w, p + "attn_q_norm.weight");
            KNorm = Optional(w, p + "attn_k_norm.weight");
            FfnNorm = TensorConversion.ToFloat(w.Get(p + "ffn_norm.weight"));
            Gate = w.Get(p + "ffn_gate.weight");
            Up = w.Get(p + "ffn_up.weight");
            Down = w.Get(p + "ffn_down.weight");
            if ((Bq is null) != (Bk is null) || (Bq is null) != (Bv is null) || (QNorm is null) != (KNorm is null))
            {
                throw new ModelFormatException($"blk.{i}", "q, k and v biases (and q/k norms) must come together");
            }
        }

        public float[] AttnNorm { get; }
        public WeightTensor Wq { get; }
        public WeightTensor Wk { get; }
        public WeightTensor Wv { get; }
        public WeightTensor Wo { get; }
        public float[]? Bq { get; }
        public float[]? Bk { get; }
        public float[]? Bv { get; }
        public float[]? QNorm { get; }
        public float[]? KNorm { get; }
        public float[] FfnNorm { get; }
        public WeightTensor Gate { get; }
        public WeightTensor Up { get; }
        public WeightTensor Down { get; }

        private static float[]? Optional(ModelWeights w, string name)
        {
            var t = w.TryGet(name);
            return t is null ? null : TensorConversion.ToFloat(t);
        }
    }
}
