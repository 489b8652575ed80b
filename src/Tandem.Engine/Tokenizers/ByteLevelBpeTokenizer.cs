using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace Tandem.Engine.Tokenizers;

/// <summary>
/// GPT-2 style byte-level BPE (GGUF "gpt2", Hugging Face ByteLevel): a pre-tokenizer regex splits the text, each piece's
/// UTF-8 bytes map to printable characters, then merges apply by lowest rank.
/// </summary>
internal sealed class ByteLevelBpeTokenizer : VocabularyTokenizer
{
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    internal const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    internal const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const int MaxCacheEntries = 65536;

    internal static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly int[] CharToByte = BuildCharToByte();
    private static readonly ConcurrentDictionary<string, Regex> Regexes = new(StringComparer.Ordinal);

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _mergeLookup;
    private readonly Regex _regex;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    /// <summary>Creates the tokenizer; <paramref name="merges"/> are "left right" in rank order, <paramref name="preName"/> is the GGUF
    /// tokenizer.ggml.pre name kept for export and <paramref name="pattern"/> the pre-tokenizer regex (.NET syntax).</summary>
    public ByteLevelBpeTokenizer(string[] tokens, TokenType[] types, string[] merges, SpecialTokenIds ids, bool addBos,
        string preName, string pattern, bool ignoreMerges)
        : base(tokens, types, ComputeBytes(tokens, types), ids, addBos)
    {
        Merges = merges;
        PreName = preName;
        Pattern = pattern;
        IgnoreMerges = ignoreMerges;
        _regex = Regexes.GetOrAdd(pattern, p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant));
        _vocab = BuildLookup(tokens, types, t => t is not (TokenType.Control or TokenType.Unused));
        _vocabLookup = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        var ranks = new Dictionary<string, int>(merges.Length, StringComparer.Ordinal);
        for (var i = 0; i < merges.Length; i++)
        {
            ranks.TryAdd(merges[i], i);
        }
        _mergeLookup = ranks.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public override TokenizerKind Kind => TokenizerKind.ByteLevelBpe;
    internal string[] Merges { get; }
    internal string PreName { get; }
    internal string Pattern { get; }
    internal bool IgnoreMerges { get; }
    internal override bool DecodesMetaspace => false;
    internal override bool StripsLeadingSpace => false;

    /// <summary>Validates a pre-tokenizer pattern; null when .NET cannot compile it.</summary>
    internal static string? PatternError(string pattern)
    {
        try
        {
            Regexes.GetOrAdd(pattern, p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant));
            return null;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static int[] BuildCharToByte()
    {
        var map = new int[512];
        Array.Fill(map, -1);
        for (var b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = b;
        }
        return map;
    }

    private static byte[][] ComputeBytes(string[] tokens, TokenType[] types)
    {
        var result = new byte[tokens.Length][];
        for (var i = 0; i < tokens.Length; i++)
        {
            result[i] = types[i] switch
            {
                TokenType.Control or TokenType.Unknown or TokenType.Unused => [],
                TokenType.UserDefined => Encoding.UTF8.GetBytes(tokens[i]),
                _ => UnmapBytes(tokens[i]),
            };
        }
        return result;
    }

    private static byte[] UnmapBytes(string token)
    {
        var bytes = new List<byte>(token.Length);
        foreach (var c in token)
        {
            var b = c < CharToByte.Length ? CharToByte[c] : -1;
            if (b >= 0)
            {
                bytes.Add((byte)b);
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return [.. bytes];
    }

    protected override void EncodeFragment(ReadOnlySpan<char> fragment, List<int> output)
    {
        var pieceStart = 0;
        foreach (var match in _regex.EnumerateMatches(fragment))
        {
            Cut(fragment, ref pieceStart, match.Index, output);
            Cut(fragment, ref pieceStart, match.Index + match.Length, output);
        }
        Cut(fragment, ref pieceStart, fragment.Length, output);
    }

    /// <summary>Ends the current piece at <paramref name="end"/>, unless that would split a surrogate pair.</summary>
    private void Cut(ReadOnlySpan<char> fragment, ref int pieceStart, int end, List<int> output)
    {
        if (end <= pieceStart || (end < fragment.Length && char.IsLowSurrogate(fragment[end]) && char.IsHighSurrogate(fragment[end - 1])))
        {
            return;
        }
        EncodeWord(fragment[pieceStart..end], output);
        pieceStart = end;
    }

    private void EncodeWord(ReadOnlySpan<char> word, List<int> output)
    {
        var byteCount = Encoding.UTF8.GetByteCount(word);
        var bytes = ArrayPool<byte>.Shared.Rent(byteCount);
        var mapped = ArrayPool<char>.Shared.Rent(byteCount);
        try
        {
            Encoding.UTF8.GetBytes(word, bytes);
            for (var i = 0; i < byteCount; i++)
            {
                mapped[i] = ByteToChar[bytes[i]];
            }
            var symbols = mapped.AsSpan(0, byteCount);
            if (IgnoreMerges && _vocabLookup.TryGetValue(symbols, out var whole))
            {
                output.Add(whole);
                return;
            }
            var key = new string(symbols);
            if (!_cache.TryGetValue(key, out var ids))
            {
                ids = Bpe(key);
                if (_cache.Count >= MaxCacheEntries)
                {
                    _cache.Clear();
                }
                _cache.TryAdd(key, ids);
            }
            output.AddRange(ids);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(mapped);
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private int[] Bpe(string word)
    {
        var n = word.Length;
        var length = new int[n];
        var prev = new int[n];
        var next = new int[n];
        for (var i = 0; i < n; i++)
        {
            length[i] = 1;
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        var keyBuffer = new char[n + 1];
        var queue = new PriorityQueue<(int Left, int Right, int LeftLength, int RightLength), (int Rank, int Left)>();
        for (var i = 1; i < n; i++)
        {
            TryAddPair(word, length, i - 1, i, keyBuffer, queue);
        }
        while (queue.TryDequeue(out var pair, out _))
        {
            var (left, right, leftLength, rightLength) = pair;
            if (length[left] != leftLength || length[right] != rightLength)
            {
                continue;
            }
            length[left] += length[right];
            length[right] = 0;
            next[left] = next[right];
            if (next[right] >= 0)
            {
                prev[next[right]] = left;
            }
            if (prev[left] >= 0)
            {
                TryAddPair(word, length, prev[left], left, keyBuffer, queue);
            }
            if (next[left] >= 0)
            {
                TryAddPair(word, length, left, next[left], keyBuffer, queue);
            }
        }

        var ids = new List<int>();
        for (var i = 0; i >= 0; i = next[i])
        {
            var piece = word.AsSpan(i, length[i]);
            if (_vocabLookup.TryGetValue(piece, out var id))
            {
                ids.Add(id);
                continue;
            }
            foreach (var c in piece)
            {
                if (_vocabLookup.TryGetValue([c], out var charId))
                {
                    ids.Add(charId);
                }
                else if (Ids.Unknown >= 0)
                {
                    ids.Add(Ids.Unknown);
                }
            }
        }
        return [.. ids];
    }

    private void TryAddPair(string word, int[] length, int left, int right, char[] keyBuffer,
        PriorityQueue<(int Left, int Right, int LeftLength, int RightLength), (int Rank, int Left)> queue)
    {
        var leftLength = length[left];
        var rightLength = length[right];
        word.AsSpan(left, leftLength).CopyTo(keyBuffer);
        keyBuffer[leftLength] = ' ';
        word.AsSpan(right, rightLength).CopyTo(keyBuffer.AsSpan(leftLength + 1));
        if (_mergeLookup.TryGetValue(keyBuffer.AsSpan(0, leftLength + rightLength + 1), out var rank))
        {
            queue.Enqueue((left, right, leftLength, rightLength), (rank, left));
        }
    }
}
