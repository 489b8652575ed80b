using System.Text;

namespace Tandem.Engine.Tokenizers;

/// <summary>State and behaviour shared by the vocabulary-based tokenizers: ids, token types, special-token parsing, decoding.</summary>
internal abstract class VocabularyTokenizer : Tokenizer
{
    /// <summary>Token names that end generation when present in a vocabulary.</summary>
    internal static readonly string[] StopTokenNames = ["<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<|end|>", "<|eom_id|>"];

    private readonly byte[][] _bytes;
    private readonly int[] _stopIds;
    private readonly SpecialTokenMatcher _specials;

    protected VocabularyTokenizer(string[] tokens, TokenType[] types, byte[][] bytes, SpecialTokenIds ids, bool addBos)
    {
        Tokens = tokens;
        Types = types;
        Ids = ids;
        AddBos = addBos;
        _bytes = bytes;
        _specials = new SpecialTokenMatcher(tokens, types);

        var stops = new List<int>();
        if (ids.Eos >= 0)
        {
            stops.Add(ids.Eos);
        }
        for (var i = 0; i < tokens.Length; i++)
        {
            if (Array.IndexOf(StopTokenNames, tokens[i]) >= 0 && !stops.Contains(i))
            {
                stops.Add(i);
            }
        }
        foreach (var extra in new[] { ids.Eot, ids.Eom })
        {
            if (extra >= 0 && !stops.Contains(extra))
            {
                stops.Add(extra);
            }
        }
        _stopIds = [.. stops];
    }

    internal string[] Tokens { get; }
    internal TokenType[] Types { get; }
    internal SpecialTokenIds Ids { get; }
    internal List<string> WarningList { get; } = [];
    public override IReadOnlyList<string> Warnings => WarningList;

    /// <summary>Whether decoding turns '▁' into ' ' (SentencePiece).</summary>
    internal abstract bool DecodesMetaspace { get; }

    /// <summary>Whether decoding removes the leading space of each segment (SentencePiece add_space_prefix).</summary>
    internal abstract bool StripsLeadingSpace { get; }

    public override int VocabSize => Tokens.Length;
    public override int BosId => Ids.Bos;
    public override int EosId => Ids.Eos;
    public override bool AddBos { get; }
    public override IReadOnlyList<int> StopTokenIds => _stopIds;

    public override int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 2);
        if (addBos && Ids.Bos >= 0)
        {
            output.Add(Ids.Bos);
        }
        if (!parseSpecial || _specials.IsEmpty)
        {
            if (text.Length > 0)
            {
                EncodeFragment(text, output);
            }
            return [.. output];
        }
        var span = text.AsSpan();
        var fragmentStart = 0;
        var position = 0;
        while (position < span.Length)
        {
            if (_specials.TryMatch(span, position, out var id, out var length))
            {
                if (position > fragmentStart)
                {
                    EncodeFragment(span[fragmentStart..position], output);
                }
                output.Add(id);
                position += length;
                fragmentStart = position;
            }
            else
            {
                position++;
            }
        }
        if (span.Length > fragmentStart)
        {
            EncodeFragment(span[fragmentStart..], output);
        }
        return [.. output];
    }

    /// <summary>Encodes plain text that follows the start of the input or a special token.</summary>
    protected abstract void EncodeFragment(ReadOnlySpan<char> fragment, List<int> output);

    public override ReadOnlySpan<byte> TokenBytes(int id) => _bytes[CheckId(id)];

    public override string TokenText(int id) => Tokens[CheckId(id)];

    public override bool IsSpecial(int id) => TypeOf(id) is TokenType.Control or TokenType.Unknown or TokenType.Unused;

    internal TokenType TypeOf(int id) => Types[CheckId(id)];

    public override string Decode(ReadOnlySpan<int> ids, bool skipSpecial = true)
    {
        var decoder = new StreamingDecoder(this, skipSpecial);
        var builder = new StringBuilder(ids.Length * 4);
        foreach (var id in ids)
        {
            builder.Append(decoder.Push(id));
        }
        builder.Append(decoder.Flush());
        return builder.ToString();
    }

    public override IncrementalDecoder CreateIncrementalDecoder(bool skipSpecial = true) => new StreamingDecoder(this, skipSpecial);

    private int CheckId(int id)
    {
        if ((uint)id >= (uint)Tokens.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary of {Tokens.Length}");
        }
        return id;
    }

    /// <summary>First-occurrence map from token text to id for the tokens that <paramref name="include"/> accepts.</summary>
    protected static Dictionary<string, int> BuildLookup(string[] tokens, TokenType[] types, Func<TokenType, bool> include)
    {
        var map = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (var i = 0; i < tokens.Length; i++)
        {
            if (include(types[i]))
            {
                map.TryAdd(tokens[i], i);
            }
        }
        return map;
    }
}
