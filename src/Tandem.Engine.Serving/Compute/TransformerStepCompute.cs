using Tandem.Engine.Inference;
using Tandem.Engine.Models;

namespace Tandem.Engine.Serving.Compute;

/// <summary>Real compute: one <see cref="Transformer.Forward"/> over all chunks, then each sequence's own sampler.</summary>
internal sealed class TransformerStepCompute(Transformer model, HashSet<int> modelStops, int maxNumSeqs, string? sharedMemoryDirectory = null) : IStepCompute
{
    private PagedKvCache? _cache;
    private float[] _logits = [];

    public ModelConfig Config => model.Config;

    public PagedKvCache? Cache => _cache;

    public long BytesPerBlock(int blockSize) => PagedKvCache.BytesFor(Config.NumLayers, Config.KvDim, blockSize, 1);

    public void Initialize(KvBlockManager blocks, int numBlocks, int blockSize) => _cache = model.CreateCache(numBlocks, blockSize, sharedMemoryDirectory);

    public void Run(IReadOnlyList<ForwardChunk> chunks, IReadOnlyList<ServingSequence> owners, Span<int> tokens, Span<float> logprobs)
    {
        var vocab = Config.VocabSize;
        var rows = 0;
        for (var i = 0; i < chunks.Count; i++) // indexing: a foreach over the interface would box an enumerator per step
        {
            rows += chunks[i].WantLogits ? 1 : 0;
        }
        if (_logits.Length < rows * vocab)
        {
            _logits = new float[Math.Max(rows, Math.Min(maxNumSeqs, 64)) * vocab];
        }
        model.Forward(_cache!, chunks, _logits);
        var row = 0;
        for (var i = 0; i < chunks.Count; i++)
        {
            if (!chunks[i].WantLogits)
            {
                continue;
            }
            var seq = owners[i];
            var logits = _logits.AsSpan(row * vocab, vocab);
            if (seq.Generated < seq.Request.MinTokens)
            {
                SuppressStops(seq, logits);
            }
            var logprob = float.NaN;
            var prompt = seq.Tokens.AsSpan(0, seq.PromptLength);
            var output = seq.Tokens.AsSpan(seq.PromptLength, seq.Generated);
            tokens[row] = seq.Request.Logprobs
                ? seq.Sampler.Sample(logits, prompt, output, out logprob)
                : seq.Sampler.Sample(logits, prompt, output);
            logprobs[row] = logprob;
            row++;
        }
    }

    private void SuppressStops(ServingSequence seq, Span<float> logits)
    {
        if (!seq.Request.IgnoreEos)
        {
            foreach (var t in modelStops)
            {
                logits[t] = float.NegativeInfinity;
            }
        }
        foreach (var t in seq.Request.StopTokenIds)
        {
            if ((uint)t < (uint)logits.Length)
            {
                logits[t] = float.NegativeInfinity;
            }
        }
    }

    public void Dispose() => _cache?.Dispose();
}
