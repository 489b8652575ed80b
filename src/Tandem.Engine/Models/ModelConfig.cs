namespace Tandem.Engine.Models;

/// <summary>How rotary embeddings pair up the dimensions of a head.</summary>
public enum RopeStyle
{
    /// <summary>Pairs (2i, 2i+1): original Meta Llama and llama.cpp's GGUF layout for llama/mistral.</summary>
    Interleaved,

    /// <summary>Pairs (i, i + d/2) ("rotate half"): Hugging Face checkpoints and GGUF qwen2/qwen3.</summary>
    Neox,
}

/// <summary>Llama 3 style frequency-dependent RoPE scaling (rope_type "llama3"), or plain linear scaling.</summary>
public sealed record RopeScaling(
    string Type,
    float Factor,
    float LowFreqFactor = 1f,
    float HighFreqFactor = 4f,
    int OriginalContextLength = 8192);

/// <summary>Hyper-parameters of a llama-family decoder-only transformer.</summary>
public sealed record ModelConfig
{
    /// <summary>"llama", "mistral", "qwen2" or "qwen3".</summary>
    public required string Architecture { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public int ContextLength { get; init; } = 2048;
    public float RmsNormEps { get; init; } = 1e-5f;
    public float RopeTheta { get; init; } = 10000f;
    public RopeScaling? RopeScaling { get; init; }
    public RopeStyle RopeStyle { get; init; } = RopeStyle.Neox;

    /// <summary>Bias on the q, k and v projections (Qwen2).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>RMSNorm over each head of q and k before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }

    /// <summary>The output projection reuses the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; }

    public int QDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;

    /// <summary>Checks the invariants the forward pass relies on; throws <see cref="ModelFormatException"/> naming <paramref name="path"/>.</summary>
    public void Validate(string path)
    {
        static bool Bad(int v, int max) => v <= 0 || v > max;
        if (Bad(HiddenSize, 1 << 16) || Bad(IntermediateSize, 1 << 18) || Bad(NumLayers, 1024) || Bad(NumHeads, 1024)
            || Bad(NumKvHeads, 1024) || Bad(HeadDim, 4096) || Bad(VocabSize, 1 << 22) || Bad(ContextLength, 1 << 24))
        {
            throw new ModelFormatException(path, $"implausible model dimensions: {this}");
        }
        if (NumHeads % NumKvHeads != 0)
        {
            throw new ModelFormatException(path, $"{NumHeads} attention heads are not a multiple of {NumKvHeads} key/value heads");
        }
        if (HeadDim % 2 != 0)
        {
            throw new ModelFormatException(path, $"head dimension {HeadDim} is odd; rotary embeddings need an even one");
        }
        if (!(RmsNormEps > 0) || !(RopeTheta > 0))
        {
            throw new ModelFormatException(path, $"invalid rms_norm_eps {RmsNormEps} or rope_theta {RopeTheta}");
        }
    }
}
