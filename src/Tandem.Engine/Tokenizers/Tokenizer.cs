namespace Tandem.Engine.Tokenizers;

public enum TokenizerKind
{
    /// <summary>SentencePiece-style BPE with scores, '▁' for spaces and &lt;0xXX&gt; byte fallback (GGUF "llama").</summary>
    SentencePiece,

    /// <summary>Byte-level BPE with merges (GGUF "gpt2", Hugging Face ByteLevel).</summary>
    ByteLevelBpe,
}

/// <summary>Turns text into token ids and back. Implementations are immutable and thread-safe.</summary>
public abstract class Tokenizer
{
    public abstract TokenizerKind Kind { get; }
    public abstract int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, or -1 when the vocabulary has none.</summary>
    public abstract int BosId { get; }

    /// <summary>End-of-sequence id, or -1 when the vocabulary has none.</summary>
    public abstract int EosId { get; }

    /// <summary>Whether <see cref="Encode"/> prepends BOS by default for this model.</summary>
    public abstract bool AddBos { get; }

    /// <summary>Ids that end generation: EOS plus end-of-turn tokens such as &lt;|eot_id|&gt; or &lt;|im_end|&gt;.</summary>
    public abstract IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>Encodes text. Special-token text in <paramref name="text"/> (e.g. "&lt;|im_start|&gt;") maps to its id when <paramref name="parseSpecial"/> is set.</summary>
    public abstract int[] Encode(string text, bool addBos, bool parseSpecial = false);

    /// <summary>The raw bytes a token stands for when decoding (UTF-8 fragments possible); control tokens give an empty array.</summary>
    public abstract ReadOnlySpan<byte> TokenBytes(int id);

    /// <summary>The vocabulary entry as stored (for display), e.g. "▁Once" or "Ġthe".</summary>
    public abstract string TokenText(int id);

    public abstract bool IsSpecial(int id);

    /// <summary>Decodes ids to text; invalid UTF-8 becomes U+FFFD.</summary>
    public abstract string Decode(ReadOnlySpan<int> ids, bool skipSpecial = true);

    /// <summary>A decoder that turns a stream of ids into text without ever splitting a UTF-8 character.</summary>
    public abstract IncrementalDecoder CreateIncrementalDecoder(bool skipSpecial = true);

    /// <summary>Notes about approximations made while loading (e.g. an unknown pre-tokenizer replaced by GPT-2's); empty when none.</summary>
    public virtual IReadOnlyList<string> Warnings => [];
}

/// <summary>Streaming detokenizer: returns only text that is complete, holding back partial UTF-8 sequences.</summary>
public abstract class IncrementalDecoder
{
    /// <summary>Adds a token and returns the text it completes (possibly empty).</summary>
    public abstract string Push(int id);

    /// <summary>Returns whatever is held back (incomplete bytes become U+FFFD).</summary>
    public abstract string Flush();
}
