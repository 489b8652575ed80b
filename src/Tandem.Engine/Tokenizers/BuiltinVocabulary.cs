namespace Tandem.Engine.Tokenizers;

/// <summary>
/// A deterministic 512-token SentencePiece vocabulary for random-weight demo and test models: &lt;unk&gt;=0, &lt;s&gt;=1,
/// &lt;/s&gt;=2, 256 byte tokens &lt;0x00&gt;..&lt;0xFF&gt;, then 253 pieces for common English. Every multi-character
/// piece is the concatenation of two earlier pieces, so the merge algorithm can produce all of them.
/// </summary>
public static class BuiltinVocabulary
{
    public const int Size = 512;

    private const string Characters = "\u2581abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()";

    /// <summary>Wanted pieces in priority order; missing intermediate pieces are added just before the piece that needs them.</summary>
    private static readonly string[] Candidates =
    [
        "▁t", "he", "▁a", "in", "er", "an", "▁the", "re", "on", "▁s", "at", "en", "nd", "▁w", "ed", "▁o", "it", "ou",
        "is", "es", "or", "ing", "▁b", "▁c", "▁f", "▁h", "▁m", "▁p", "▁d", "▁l", "▁i", "▁n", "▁g", "▁y", "ar", "al",
        "le", "as", "st", "ll", "om", "ve", "ic", "ly", "ro", "ay", "ow", "ee", "oo", "ch", "sh", "th", "ke", "ck",
        "ut", "id", "ad", "ent", "ter", "ion", "▁and", "▁to", "▁of", "▁in", "▁is", "▁it", "▁he", "▁was", "▁for",
        "▁on", "▁T", "▁I", "▁S", "▁A", "▁H", "▁W", "▁M", "▁L", "▁B", "▁that", "▁with", "▁as", "▁at", "▁be",
        "▁you", "▁his", "▁her", "▁she", "▁they", "▁we", "▁had", "▁have", "▁not", "▁but", "▁are", "▁this",
        "▁from", "▁by", "▁or", "▁one", "▁all", "▁said", "▁there", "▁were", "▁so", "▁up", "▁out", "▁what",
        "▁day", "▁time", "▁little", "▁big", "▁very", "▁happy", "▁saw", "▁went", "▁wanted", "▁play", "▁friend",
        "▁mom", "▁once", "▁upon", "▁The", "▁Once", "▁She", "▁He", "▁They", "▁It", "▁Lily", "▁Tim", "▁girl",
        "▁boy", "▁named", "▁do", "▁go", "▁can", "▁will", "▁like", "▁some", "▁time", "▁back", "▁home", "▁good",
        "▁new", "▁know", "▁look", "▁come", "▁make", "▁see", "▁no", "▁yes", "▁my", "▁me", "▁your", "▁about",
        "▁when", "▁then", "▁who", "▁how", "▁more", "ers", "ies", "est", "ful", "ness", "ment", "ous", "ive",
        "▁Hello", "▁world", "▁dog", "▁cat", "▁tree", "▁park", "▁ball", "▁sun", "▁fun", "▁help", "▁love",
    ];

    /// <summary>Creates the built-in tokenizer (add BOS, add space prefix, byte fallback).</summary>
    public static Tokenizer Create()
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<TokenType> { TokenType.Unknown, TokenType.Control, TokenType.Control };
        var scores = new List<float> { 0, 0, 0 };
        for (var b = 0; b < 256; b++)
        {
            tokens.Add($"<0x{b:X2}>");
            types.Add(TokenType.Byte);
            scores.Add(0);
        }
        var pieces = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Characters.Length; i++)
        {
            var c = Characters[i].ToString();
            pieces.Add(c);
            tokens.Add(c);
            types.Add(TokenType.Normal);
            scores.Add(-1000f - i);
        }
        var merged = 0;
        bool Add(string piece)
        {
            if (tokens.Count >= Size)
            {
                return false;
            }
            pieces.Add(piece);
            tokens.Add(piece);
            types.Add(TokenType.Normal);
            scores.Add(-merged++);
            return true;
        }
        bool Ensure(string piece)
        {
            if (pieces.Contains(piece))
            {
                return true;
            }
            if (piece.Length < 2)
            {
                return false;
            }
            for (var k = piece.Length - 1; k >= 1; k--)
            {
                if (pieces.Contains(piece[..k]) && pieces.Contains(piece[k..]))
                {
                    return Add(piece);
                }
            }
            // Build the longest known prefix plus the (recursively built) rest.
            var prefix = piece.Length - 1;
            while (prefix > 1 && !pieces.Contains(piece[..prefix]))
            {
                prefix--;
            }
            return Ensure(piece[..prefix]) && Ensure(piece[prefix..]) && Add(piece);
        }
        foreach (var candidate in Candidates)
        {
            Ensure(candidate);
        }
        // Fill what is left with two-letter pieces, deterministically.
        for (var a = 'a'; a <= 'z' && tokens.Count < Size; a++)
        {
            foreach (var b in "aeiou")
            {
                Ensure($"{a}{b}");
            }
        }
        if (tokens.Count != Size)
        {
            throw new InvalidOperationException($"built-in vocabulary has {tokens.Count} tokens instead of {Size}");
        }
        var ids = new SpecialTokenIds(Bos: 1, Eos: 2, Unknown: 0, Padding: -1, Eot: -1, Eom: -1);
        return new SentencePieceTokenizer([.. tokens], [.. scores], [.. types], ids, addBos: true, addSpacePrefix: true);
    }
}
