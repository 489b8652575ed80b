using System.Diagnostics;
using System.Threading.Channels;
using Tandem.Abstractions;
using Tandem.Engine.Inference;
using Tandem.Engine.Sampling;

namespace Tandem.Engine.Serving;

/// <summary>The engine's state of one request: tokens so far, KV block table, prefix hashes, sampler, output stream.</summary>
internal sealed class ServingSequence
{
    public ServingSequence(GenerateRequest request, int maxLength, long hashSeed)
    {
        Request = request;
        PromptLength = request.PromptTokens.Count;
        MaxLength = maxLength;
        Tokens = new int[maxLength];
        for (var i = 0; i < PromptLength; i++)
        {
            Tokens[i] = request.PromptTokens[i];
        }
        Count = PromptLength;
        HashSeed = hashSeed;
        Sampler = new Sampler(request.Sampling);
        StartTimestamp = Stopwatch.GetTimestamp();
        Output = Channel.CreateUnbounded<TokenOutput>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }

    public GenerateRequest Request { get; }
    public int PromptLength { get; }

    /// <summary>Prompt plus the most tokens it may generate, capped by the context length.</summary>
    public int MaxLength { get; }

    /// <summary>Prompt then generated tokens; the first <see cref="Count"/> are valid.</summary>
    public int[] Tokens { get; }

    public int Count { get; set; }
    public int Generated => Count - PromptLength;
    public KvSequence Kv { get; } = new();
    public long HashSeed { get; }

    /// <summary>Sequence and tokens hashes of the full blocks of <see cref="Tokens"/> computed so far.</summary>
    public List<ulong> SequenceHashes { get; } = [];
    public List<ulong> TokensHashes { get; } = [];

    /// <summary>Blocks already registered in the prefix cache (or found there).</summary>
    public int CommittedBlocks { get; set; }

    public int CachedPromptTokens { get; set; }
    public Sampler Sampler { get; }
    public long StartTimestamp { get; }
    public Channel<TokenOutput> Output { get; }
    public CancellationTokenRegistration Cancellation { get; set; }

    /// <summary>Counted against the queue bound until first admitted.</summary>
    public bool CountsInQueue { get; set; } = true;

    public bool Running { get; set; }
    public bool Done { get; set; }

    /// <summary>Keep the KV blocks in a lease when finished (prefill for another worker).</summary>
    public bool RetainKv { get; init; }

    public KvBlockLease? Retained { get; set; }

    /// <summary>KV handed in from elsewhere (import), adopted at admission instead of computing the prompt.</summary>
    public KvBlockLease? Imported { get; set; }

    /// <summary>Log-probability of the first token that came with imported KV (the prefill side sampled it).</summary>
    public float ImportedLogprob { get; set; }

    /// <summary>Tokens not yet in the KV cache (the last sampled token is always one of them while running).</summary>
    public int Pending => Count - Kv.Length;

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(StartTimestamp);

    /// <summary>Extends the hash lists over every full block of the known tokens.</summary>
    public void HashKnownBlocks(int blockSize)
    {
        var full = Count / blockSize;
        if (SequenceHashes.Count < full)
        {
            ulong? parent = SequenceHashes.Count == 0 ? null : SequenceHashes[^1];
            BlockHashing.HashFullBlocks(Tokens.AsSpan(0, full * blockSize), blockSize, HashSeed, SequenceHashes.Count, parent, SequenceHashes, TokensHashes);
        }
    }
}
