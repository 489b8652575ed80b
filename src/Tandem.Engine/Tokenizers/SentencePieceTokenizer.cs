using System.Buffers;
using System.Globalization;
using System.Text;

namespace Tandem.Engine.Tokenizers;

/// <summary>
/// llama.cpp's SentencePiece BPE (GGUF "llama"): spaces become '▁', an optional '▁' prefix, then the adjacent pair whose
/// concatenation is a vocabulary piece with the highest score is merged until none is left; characters without a piece
/// fall back to &lt;0xXX&gt; byte tokens (or unk).
/// </summary>
internal sealed class SentencePieceTokenizer : VocabularyTokenizer
{
    private const char Metaspace = '\u2581';

    private readonly Dictionary<string, int> _pieces;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _pieceLookup;
    private readonly int[] _byteIds;

    public SentencePieceTokenizer(string[] tokens, float[] scores, TokenType[] types, SpecialTokenIds ids, bool addBos, bool addSpacePrefix)
        : base(tokens, types, ComputeBytes(tokens, types), ids, addBos)
    {
        Scores = scores;
        AddSpacePrefix = addSpacePrefix;
        _pieces = BuildLookup(tokens, types, IsMergeable);
        _pieceLookup = _pieces.GetAlternateLookup<ReadOnlySpan<char>>();
        _byteIds = new int[256];
        Array.Fill(_byteIds, -1);
        for (var i = 0; i < tokens.Length; i++)
        {
            if (types[i] == TokenType.Byte && TryParseByteToken(tokens[i], out var value) && _byteIds[value] < 0)
            {
                _byteIds[value] = i;
            }
        }
    }

    public override TokenizerKind Kind => TokenizerKind.SentencePiece;
    internal float[] Scores { get; }
    internal bool AddSpacePrefix { get; }
    internal override bool DecodesMetaspace => true;
    internal override bool StripsLeadingSpace => AddSpacePrefix;

    /// <summary>Pieces that text can turn into: normal (and undefined) tokens, never control, byte, unused or added ones.</summary>
    internal static bool IsMergeable(TokenType type) => type is TokenType.Normal or TokenType.Undefined;

    internal static bool TryParseByteToken(string text, out byte value)
    {
        value = 0;
        return text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>'
            && byte.TryParse(text.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    internal bool TryGetPiece(ReadOnlySpan<char> text, out int id) => _pieceLookup.TryGetValue(text, out id);

    private static byte[][] ComputeBytes(string[] tokens, TokenType[] types)
    {
        var result = new byte[tokens.Length][];
        for (var i = 0; i < tokens.Length; i++)
        {
            result[i] = types[i] switch
            {
                TokenType.Control or TokenType.Unknown or TokenType.Unused => [],
                TokenType.Byte when TryParseByteToken(tokens[i], out var b) => [b],
                _ => Encoding.UTF8.GetBytes(tokens[i].Replace(Metaspace, ' ')),
            };
        }
        return result;
    }

    protected override void EncodeFragment(ReadOnlySpan<char> fragment, List<int> output)
    {
        var prefix = AddSpacePrefix ? 1 : 0;
        var n = fragment.Length + prefix;
        var text = ArrayPool<char>.Shared.Rent(n);
        var buffers = ArrayPool<int>.Shared.Rent(n * 4);
        try
        {
            if (prefix == 1)
            {
                text[0] = Metaspace;
            }
            fragment.CopyTo(text.AsSpan(prefix));
            text.AsSpan(prefix, fragment.Length).Replace(' ', Metaspace);
            Tokenize(text.AsSpan(0, n), buffers, output);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(buffers);
            ArrayPool<char>.Shared.Return(text);
        }
    }

    private void Tokenize(ReadOnlySpan<char> text, int[] buffers, List<int> output)
    {
        var n = text.Length;
        var start = buffers.AsSpan(0, n);
        var length = buffers.AsSpan(n, n);
        var prev = buffers.AsSpan(2 * n, n);
        var next = buffers.AsSpan(3 * n, n);

        // One symbol per code point (a surrogate pair stays together).
        var count = 0;
        for (var i = 0; i < n;)
        {
            var len = char.IsHighSurrogate(text[i]) && i + 1 < n && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[count] = i;
            length[count] = len;
            prev[count] = count - 1;
            next[count] = count + 1;
            count++;
            i += len;
        }
        next[count - 1] = -1;

        var queue = new PriorityQueue<(int Left, int Right, int Size), (float Score, int Left)>(count, BigramOrder.Instance);
        for (var i = 1; i < count; i++)
        {
            TryAddBigram(text, start, length, i - 1, i, queue);
        }
        while (queue.TryDequeue(out var bigram, out _))
        {
            var (left, right, size) = bigram;
            if (length[left] == 0 || length[right] == 0 || length[left] + length[right] != size)
            {
                continue; // outdated: one side was merged since
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
                TryAddBigram(text, start, length, prev[left], left, queue);
            }
            if (next[left] >= 0)
            {
                TryAddBigram(text, start, length, left, next[left], queue);
            }
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (var i = 0; i >= 0; i = next[i])
        {
            var piece = text.Slice(start[i], length[i]);
            if (_pieceLookup.TryGetValue(piece, out var id))
            {
                output.Add(id);
                continue;
            }
            // Not a piece: only single code points get here (merges only produce pieces). Fall back to bytes.
            var byteCount = Encoding.UTF8.GetBytes(piece, utf8);
            var allBytes = true;
            for (var b = 0; b < byteCount; b++)
            {
                allBytes &= _byteIds[utf8[b]] >= 0;
            }
            if (allBytes)
            {
                for (var b = 0; b < byteCount; b++)
                {
                    output.Add(_byteIds[utf8[b]]);
                }
            }
            else if (Ids.Unknown >= 0)
            {
                output.Add(Ids.Unknown);
            }
        }
    }

    private void TryAddBigram(ReadOnlySpan<char> text, Span<int> start, Span<int> length, int left, int right,
        PriorityQueue<(int Left, int Right, int Size), (float Score, int Left)> queue)
    {
        var size = length[left] + length[right];
        if (_pieceLookup.TryGetValue(text.Slice(start[left], size), out var id))
        {
            queue.Enqueue((left, right, size), (Scores[id], left));
        }
    }

    /// <summary>Highest score first, then leftmost.</summary>
    private sealed class BigramOrder : IComparer<(float Score, int Left)>
    {
        public static readonly BigramOrder Instance = new();

        public int Compare((float Score, int Left) x, (float Score, int Left) y)
        {
            var byScore = y.Score.CompareTo(x.Score);
            return byScore != 0 ? byScore : x.Left.CompareTo(y.Left);
        }
    }
}
