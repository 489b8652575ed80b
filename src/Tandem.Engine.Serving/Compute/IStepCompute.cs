using Tandem.Engine.Inference;
using Tandem.Engine.Models;

namespace Tandem.Engine.Serving.Compute;

/// <summary>
/// The compute half of a serving engine: runs one scheduled step and picks each sequence's next token. The scheduler,
/// KV block manager, prefix cache and streaming are the same for every implementation; the transformer computes real
/// KV and logits, the mocker only advances a timing model.
/// </summary>
internal interface IStepCompute : IDisposable
{
    /// <summary>The shape the scheduler validates against (vocabulary, context length) and sizes KV by.</summary>
    ModelConfig Config { get; }

    /// <summary>Bytes one KV block of <paramref name="blockSize"/> tokens takes (for `--kv-cache-memory`).</summary>
    long BytesPerBlock(int blockSize);

    /// <summary>Creates the KV storage once the pool size is known; <paramref name="blocks"/> is the engine's block manager.</summary>
    void Initialize(KvBlockManager blocks, int numBlocks, int blockSize);

    /// <summary>
    /// Runs <paramref name="chunks"/> (one per owner; each chunk's tokens join its sequence's KV, whose length the call
    /// advances) and writes, for each chunk that wants logits in order, the owner's next token and its log-probability
    /// (NaN unless asked for) into <paramref name="tokens"/> and <paramref name="logprobs"/>.
    /// </summary>
    void Run(IReadOnlyList<ForwardChunk> chunks, IReadOnlyList<ServingSequence> owners, Span<int> tokens, Span<float> logprobs);

    /// <summary>The KV memory, for export and import; null when this compute holds none (the mocker).</summary>
    PagedKvCache? Cache { get; }
}
