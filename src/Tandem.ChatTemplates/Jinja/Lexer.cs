using System.Globalization;
using System.Text;

namespace Tandem.ChatTemplates.Jinja;

/// <summary>
/// Splits a template into text and tag tokens, applying whitespace control the way Hugging Face configures Jinja:
/// <c>trim_blocks</c> (the first newline after a block or comment tag is dropped) and <c>lstrip_blocks</c>
/// (spaces and tabs from the start of a line up to a block or comment tag are dropped), plus explicit
/// <c>-</c> (strip all whitespace on that side) and <c>+</c> (keep it) modifiers.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] TwoCharOperators = ["**", "//", "==", "!=", "<=", ">="];
    private const string OneCharOperators = "+-*/%~|.,:()[]{}=<>";

    private readonly SourceText _source;
    private readonly string _text;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private Lexer(SourceText source)
    {
        _source = source;
        _text = source.Text;
    }

    public static List<Token> Tokenize(SourceText source)
    {
        var lexer = new Lexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        var stripLeading = false;
        while (_pos < _text.Length)
        {
            var tagStart = FindTagStart(_pos);
            var textEnd = tagStart < 0 ? _text.Length : tagStart;
            var textStart = _pos;
            var text = _text[textStart..textEnd];
            if (stripLeading)
            {
                text = text.TrimStart();
                stripLeading = false;
            }
            if (tagStart < 0)
            {
                AddText(text, textStart);
                _pos = _text.Length;
                break;
            }

            var kind = _text[tagStart + 1];
            var modifier = tagStart + 2 < _text.Length ? _text[tagStart + 2] : '\0';
            if (modifier == '-')
            {
                text = text.TrimEnd();
            }
            else if (modifier != '+' && kind != '{')
            {
                text = LstripBlock(text, textStart);
            }
            AddText(text, textStart);
            _pos = tagStart + 2 + (modifier is '-' or '+' ? 1 : 0);

            switch (kind)
            {
                case '#':
                    stripLeading = LexComment(tagStart);
                    break;
                case '%' when TryLexRaw(tagStart, out var strip):
                    stripLeading = strip;
                    break;
                case '%':
                    stripLeading = LexTag(tagStart, block: true);
                    break;
                default:
                    stripLeading = LexTag(tagStart, block: false);
                    break;
            }
        }
        _tokens.Add(new Token(TokenKind.End, "", _text.Length));
    }

    private int FindTagStart(int from)
    {
        while (true)
        {
            var i = _text.IndexOf('{', from);
            if (i < 0 || i + 1 >= _text.Length)
            {
                return -1;
            }
            if (_text[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
            from = i + 1;
        }
    }

    private void AddText(string text, int position)
    {
        if (text.Length > 0)
        {
            _tokens.Add(new Token(TokenKind.Text, text, position));
        }
    }

    /// <summary>lstrip_blocks: drop spaces/tabs between the start of the line and the tag.</summary>
    private string LstripBlock(string text, int textStart)
    {
        var i = text.Length;
        while (i > 0 && text[i - 1] is ' ' or '\t')
        {
            i--;
        }
        var lineStart = i > 0 ? text[i - 1] == '\n' : textStart == 0 || _text[textStart - 1] == '\n';
        return lineStart ? text[..i] : text;
    }

    /// <summary>trim_blocks: drop one newline right after a block or comment tag.</summary>
    private void TrimBlockNewline()
    {
        if (_pos < _text.Length && _text[_pos] == '\n')
        {
            _pos++;
        }
        else if (_pos + 1 < _text.Length && _text[_pos] == '\r' && _text[_pos + 1] == '\n')
        {
            _pos += 2;
        }
    }

    private bool LexComment(int tagStart)
    {
        var end = _text.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0)
        {
            throw _source.Error("Unclosed comment", tagStart);
        }
        var before = end > _pos ? _text[end - 1] : '\0';
        _pos = end + 2;
        if (before == '-')
        {
            return true;
        }
        if (before != '+')
        {
            TrimBlockNewline();
        }
        return false;
    }

    /// <summary><c>{% raw %}...{% endraw %}</c>: the content is text, tags inside are not interpreted.</summary>
    private bool TryLexRaw(int tagStart, out bool stripLeading)
    {
        stripLeading = false;
        var p = SkipSpaces(_pos);
        if (string.CompareOrdinal(_text, p, "raw", 0, 3) != 0)
        {
            return false;
        }
        p = SkipSpaces(p + 3);
        var openEnd = MatchTagEnd(p);
        if (openEnd < 0)
        {
            return false;
        }
        var bodyStart = openEnd;
        if (_text[p] != '-' && _text[p] != '+')
        {
            bodyStart = SkipNewline(bodyStart);
        }
        var search = bodyStart;
        while (true)
        {
            var close = _text.IndexOf("{%", search, StringComparison.Ordinal);
            if (close < 0)
            {
                throw _source.Error("Unclosed raw block, expected 'endraw'", tagStart);
            }
            var q = close + 2;
            var closeModifier = q < _text.Length ? _text[q] : '\0';
            if (closeModifier is '-' or '+')
            {
                q++;
            }
            q = SkipSpaces(q);
            if (string.CompareOrdinal(_text, q, "endraw", 0, 6) == 0)
            {
                var r = SkipSpaces(q + 6);
                var closeEnd = MatchTagEnd(r);
                if (closeEnd >= 0)
                {
                    var body = _text[bodyStart..close];
                    if (_text[p] == '-')
                    {
                        body = body.TrimStart();
                    }
                    if (closeModifier == '-')
                    {
                        body = body.TrimEnd();
                    }
                    else if (closeModifier != '+')
                    {
                        body = LstripBlock(body, bodyStart);
                    }
                    AddText(body, bodyStart);
                    _pos = closeEnd;
                    if (_text[r] == '-')
                    {
                        stripLeading = true;
                    }
                    else if (_text[r] != '+')
                    {
                        TrimBlockNewline();
                    }
                    return true;
                }
            }
            search = close + 2;
        }
    }

    private int SkipSpaces(int p)
    {
        while (p < _text.Length && char.IsWhiteSpace(_text[p]))
        {
            p++;
        }
        return p;
    }

    private int SkipNewline(int p)
    {
        if (p < _text.Length && _text[p] == '\n')
        {
            return p + 1;
        }
        return p + 1 < _text.Length && _text[p] == '\r' && _text[p + 1] == '\n' ? p + 2 : p;
    }

    /// <summary>Returns the position after <c>%}</c>, <c>-%}</c> or <c>+%}</c> at <paramref name="p"/>, or -1.</summary>
    private int MatchTagEnd(int p)
    {
        if (p < _text.Length && _text[p] is '-' or '+')
        {
            p++;
        }
        return p + 1 < _text.Length && _text[p] == '%' && _text[p + 1] == '}' ? p + 2 : -1;
    }

    /// <summary>Lexes the inside of <c>{{ }}</c> or <c>{% %}</c>; returns whether the next text is left-stripped.</summary>
    private bool LexTag(int tagStart, bool block)
    {
        _tokens.Add(new Token(block ? TokenKind.BlockBegin : TokenKind.VariableBegin, "", tagStart));
        var braceDepth = 0;
        while (true)
        {
            _pos = SkipSpaces(_pos);
            if (_pos >= _text.Length)
            {
                throw _source.Error(block ? "Unclosed block tag, expected '%}'" : "Unclosed variable tag, expected '}}'", tagStart);
            }
            var c = _text[_pos];
            var endMarker = block ? '%' : '}';
            if (block || braceDepth == 0)
            {
                var p = _pos;
                var modifier = c is '-' or '+' ? c : '\0';
                if (modifier != '\0')
                {
                    p++;
                }
                if (p + 1 < _text.Length && _text[p] == endMarker && _text[p + 1] == '}' && (modifier != '+' || block))
                {
                    _tokens.Add(new Token(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, "", _pos));
                    _pos = p + 2;
                    if (modifier == '-')
                    {
                        return true;
                    }
                    if (block && modifier != '+')
                    {
                        TrimBlockNewline();
                    }
                    return false;
                }
            }

            if (char.IsLetter(c) || c == '_')
            {
                var start = _pos;
                while (_pos < _text.Length && (char.IsLetterOrDigit(_text[_pos]) || _text[_pos] == '_'))
                {
                    _pos++;
                }
                _tokens.Add(new Token(TokenKind.Name, _text[start.._pos], start));
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (c is '\'' or '"')
            {
                LexString();
            }
            else
            {
                var start = _pos;
                string? op = null;
                foreach (var two in TwoCharOperators)
                {
                    if (string.CompareOrdinal(_text, _pos, two, 0, 2) == 0)
                    {
                        op = two;
                        break;
                    }
                }
                if (op is null && OneCharOperators.Contains(c, StringComparison.Ordinal))
                {
                    op = c.ToString();
                }
                if (op is null)
                {
                    throw _source.Error($"Unexpected character '{c}'", _pos);
                }
                if (op is "{" or "[" or "(")
                {
                    braceDepth++;
                }
                else if (op is "}" or "]" or ")")
                {
                    braceDepth = Math.Max(0, braceDepth - 1);
                }
                _pos += op.Length;
                _tokens.Add(new Token(TokenKind.Operator, op, start));
            }
        }
    }

    private void LexNumber()
    {
        var start = _pos;
        while (_pos < _text.Length && (char.IsAsciiDigit(_text[_pos]) || _text[_pos] == '_'))
        {
            _pos++;
        }
        var isFloat = false;
        if (_pos + 1 < _text.Length && _text[_pos] == '.' && char.IsAsciiDigit(_text[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            while (_pos < _text.Length && (char.IsAsciiDigit(_text[_pos]) || _text[_pos] == '_'))
            {
                _pos++;
            }
        }
        if (_pos < _text.Length && _text[_pos] is 'e' or 'E')
        {
            var p = _pos + 1;
            if (p < _text.Length && _text[p] is '+' or '-')
            {
                p++;
            }
            if (p < _text.Length && char.IsAsciiDigit(_text[p]))
            {
                isFloat = true;
                _pos = p;
                while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos]))
                {
                    _pos++;
                }
            }
        }
        var text = _text[start.._pos].Replace("_", "", StringComparison.Ordinal);
        _tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, text, start));
    }

    /// <summary>String literal with Python escapes (<c>\n \t \r \\ \' \" \xHH \uXXXX \UXXXXXXXX</c>, ...).</summary>
    private void LexString()
    {
        var start = _pos;
        var quote = _text[_pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _text.Length)
            {
                throw _source.Error("Unterminated string literal", start);
            }
            var c = _text[_pos++];
            if (c == quote)
            {
                break;
            }
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_pos >= _text.Length)
            {
                throw _source.Error("Unterminated string literal", start);
            }
            var e = _text[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '0': sb.Append('\0'); break;
                case '\n': break;
                case 'x': AppendCodePoint(sb, 2, start); break;
                case 'u': AppendCodePoint(sb, 4, start); break;
                case 'U': AppendCodePoint(sb, 8, start); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        _tokens.Add(new Token(TokenKind.String, sb.ToString(), start));
    }

    private void AppendCodePoint(StringBuilder sb, int digits, int start)
    {
        if (_pos + digits > _text.Length
            || !int.TryParse(_text.AsSpan(_pos, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code)
            || code > 0x10FFFF
            || code is >= 0xD800 and <= 0xDFFF && digits == 8)
        {
            throw _source.Error("Invalid escape sequence in string literal", start);
        }
        _pos += digits;
        if (code <= 0xFFFF)
        {
            sb.Append((char)code);
        }
        else
        {
            sb.Append(char.ConvertFromUtf32(code));
        }
    }
}
