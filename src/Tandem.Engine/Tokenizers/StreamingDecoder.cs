using System.Text;

namespace Tandem.Engine.Tokenizers;

/// <summary>
/// Incremental detokenizer shared by both tokenizers; <see cref="VocabularyTokenizer.Decode"/> runs through it too,
/// so streamed output always equals a full decode. Special tokens (and added user-defined tokens) start a new segment,
/// and a SentencePiece segment drops the one leading space that add_space_prefix put there when encoding.
/// </summary>
internal sealed class StreamingDecoder : IncrementalDecoder
{
    private readonly VocabularyTokenizer _tokenizer;
    private readonly bool _skipSpecial;
    private readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];
    private bool _segmentStart = true;

    public StreamingDecoder(VocabularyTokenizer tokenizer, bool skipSpecial)
    {
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecial;
    }

    public override string Push(int id)
    {
        var type = _tokenizer.TypeOf(id);
        switch (type)
        {
            case TokenType.Control:
            case TokenType.Unknown:
            case TokenType.Unused:
                {
                    var pending = Drain([], flush: true);
                    _segmentStart = true;
                    return _skipSpecial ? pending : pending + _tokenizer.TokenText(id);
                }
            case TokenType.UserDefined:
                {
                    var pending = Drain([], flush: true);
                    _segmentStart = true;
                    return pending + Encoding.UTF8.GetString(_tokenizer.TokenBytes(id));
                }
            default:
                return Drain(_tokenizer.TokenBytes(id), flush: false);
        }
    }

    public override string Flush() => Drain([], flush: true);

    private string Drain(ReadOnlySpan<byte> bytes, bool flush)
    {
        var needed = _utf8.GetCharCount(bytes, flush);
        if (needed == 0)
        {
            if (flush)
            {
                _utf8.Reset();
            }
            else if (bytes.Length > 0)
            {
                _utf8.GetChars(bytes, _chars, flush: false);
            }
            return "";
        }
        if (_chars.Length < needed)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }
        var written = _utf8.GetChars(bytes, _chars, flush);
        var span = _chars.AsSpan(0, written);
        if (_tokenizer.DecodesMetaspace)
        {
            span.Replace('\u2581', ' ');
        }
        if (_segmentStart && written > 0)
        {
            if (_tokenizer.StripsLeadingSpace && span[0] == ' ')
            {
                span = span[1..];
            }
            _segmentStart = false;
        }
        return new string(span);
    }
}
