using System.Globalization;

namespace Tandem.ChatTemplates.Jinja;

/// <summary>Recursive-descent parser from tokens to the template AST, with Jinja's operator precedence.</summary>
internal sealed partial class Parser
{
    /// <summary>Bounds nesting of blocks and expressions so a hostile template cannot overflow the stack.</summary>
    internal const int MaxNestingDepth = 200;

    private readonly SourceText _source;
    private readonly List<Token> _tokens;
    private int _index;
    private int _depth;

    private Parser(SourceText source, List<Token> tokens)
    {
        _source = source;
        _tokens = tokens;
    }

    public static IReadOnlyList<Node> Parse(SourceText source)
    {
        var parser = new Parser(source, Lexer.Tokenize(source));
        var body = parser.ParseBody([], out _);
        return body;
    }

    private Token Current => _tokens[_index];

    private Token Next() => _tokens[_index++];

    private ChatTemplateException Error(string message, Token token) => _source.Error(message, token.Position);

    private static string Describe(Token token) => token.Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.String => "string literal",
        _ => $"'{token.Value}'",
    };

    private bool IsOperator(string op) => Current.Kind == TokenKind.Operator && Current.Value == op;

    private bool IsName(string name) => Current.Kind == TokenKind.Name && Current.Value == name;

    private bool SkipOperator(string op)
    {
        if (IsOperator(op))
        {
            _index++;
            return true;
        }
        return false;
    }

    private bool SkipName(string name)
    {
        if (IsName(name))
        {
            _index++;
            return true;
        }
        return false;
    }

    private void ExpectOperator(string op)
    {
        if (!SkipOperator(op))
        {
            throw Error($"Expected '{op}' but found {Describe(Current)}", Current);
        }
    }

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name)
        {
            throw Error($"Expected a name but found {Describe(Current)}", Current);
        }
        return Next().Value;
    }

    private void Expect(TokenKind kind)
    {
        if (Current.Kind != kind)
        {
            var wanted = kind == TokenKind.BlockEnd ? "'%}'" : "'}}'";
            throw Error($"Expected {wanted} but found {Describe(Current)}", Current);
        }
        _index++;
    }

    private void Enter(Token at)
    {
        if (++_depth > MaxNestingDepth)
        {
            throw Error($"Template is nested too deeply (more than {MaxNestingDepth} levels)", at);
        }
    }

    private void Leave() => _depth--;

    /// <summary>
    /// Parses nodes until a block tag named in <paramref name="endTags"/>; on return the current token is that tag's
    /// name, and <paramref name="endTag"/> says which one. With no end tags, parses to the end of the template.
    /// </summary>
    private List<Node> ParseBody(string[] endTags, out string endTag)
    {
        var nodes = new List<Node>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Text:
                    _index++;
                    nodes.Add(new TextNode(token.Position, token.Value));
                    break;
                case TokenKind.VariableBegin:
                    _index++;
                    var value = ParseTuple(allowConditional: true);
                    Expect(TokenKind.VariableEnd);
                    nodes.Add(new OutputNode(token.Position, value));
                    break;
                case TokenKind.BlockBegin:
                    _index++;
                    if (Current.Kind == TokenKind.Name && Array.IndexOf(endTags, Current.Value) >= 0)
                    {
                        endTag = Current.Value;
                        return nodes;
                    }
                    var statement = ParseStatement(token);
                    if (statement is not null)
                    {
                        nodes.Add(statement);
                    }
                    break;
                case TokenKind.End:
                    if (endTags.Length > 0)
                    {
                        throw Error($"Unexpected end of template, expected {string.Join(" or ", endTags.Select(t => $"'{t}'"))}", token);
                    }
                    endTag = "";
                    return nodes;
                default:
                    throw Error($"Unexpected {Describe(token)}", token);
            }
        }
    }

    private Node? ParseStatement(Token begin)
    {
        var nameToken = Current;
        var name = ExpectName();
        Enter(nameToken);
        try
        {
            switch (name)
            {
                case "if":
                    return ParseIf(begin);
                case "for":
                    return ParseFor(begin);
                case "set":
                    return ParseSet(begin);
                case "macro":
                    return ParseMacro(begin);
                case "break":
                    Expect(TokenKind.BlockEnd);
                    return new BreakNode(begin.Position);
                case "continue":
                    Expect(TokenKind.BlockEnd);
                    return new ContinueNode(begin.Position);
                case "generation":
                    // Hugging Face's assistant-mask marker: renders its body unchanged.
                    Expect(TokenKind.BlockEnd);
                    var body = ParseBody(["endgeneration"], out _);
                    _index++;
                    Expect(TokenKind.BlockEnd);
                    return new IfNode(begin.Position, [(new LiteralExpr(begin.Position, true), body)], null);
                default:
                    throw Error($"Unknown or unsupported tag '{name}'", nameToken);
            }
        }
        finally
        {
            Leave();
        }
    }

    private IfNode ParseIf(Token begin)
    {
        var branches = new List<(Expr, IReadOnlyList<Node>)>();
        IReadOnlyList<Node>? elseBody = null;
        var condition = ParseTuple(allowConditional: true);
        while (true)
        {
            Expect(TokenKind.BlockEnd);
            var body = ParseBody(["elif", "else", "endif"], out var endTag);
            _index++;
            branches.Add((condition, body));
            if (endTag == "elif")
            {
                condition = ParseTuple(allowConditional: true);
                continue;
            }
            if (endTag == "else")
            {
                Expect(TokenKind.BlockEnd);
                elseBody = ParseBody(["endif"], out _);
                _index++;
            }
            Expect(TokenKind.BlockEnd);
            return new IfNode(begin.Position, branches, elseBody);
        }
    }

    private ForNode ParseFor(Token begin)
    {
        var targets = new List<string>();
        var parenthesized = SkipOperator("(");
        do
        {
            targets.Add(ExpectName());
        }
        while (SkipOperator(","));
        if (parenthesized)
        {
            ExpectOperator(")");
        }
        if (!SkipName("in"))
        {
            throw Error($"Expected 'in' but found {Describe(Current)}", Current);
        }
        var iterable = ParseTuple(allowConditional: false);
        Expr? filter = null;
        if (SkipName("if"))
        {
            filter = ParseTuple(allowConditional: true);
        }
        if (IsName("recursive"))
        {
            throw Error("Recursive loops are not supported", Current);
        }
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["else", "endfor"], out var endTag);
        _index++;
        IReadOnlyList<Node>? elseBody = null;
        if (endTag == "else")
        {
            Expect(TokenKind.BlockEnd);
            elseBody = ParseBody(["endfor"], out _);
            _index++;
        }
        Expect(TokenKind.BlockEnd);
        return new ForNode(begin.Position, targets, iterable, filter, body, elseBody);
    }

    private Node ParseSet(Token begin)
    {
        var targets = new List<string> { ExpectName() };
        string? attribute = null;
        if (SkipOperator("."))
        {
            attribute = ExpectName();
        }
        else
        {
            while (SkipOperator(","))
            {
                targets.Add(ExpectName());
            }
        }
        if (SkipOperator("="))
        {
            var value = ParseTuple(allowConditional: true);
            Expect(TokenKind.BlockEnd);
            return new SetNode(begin.Position, targets, attribute, value);
        }
        if (attribute is not null || targets.Count != 1)
        {
            throw Error($"Expected '=' but found {Describe(Current)}", Current);
        }
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["endset"], out _);
        _index++;
        Expect(TokenKind.BlockEnd);
        return new SetBlockNode(begin.Position, targets[0], body);
    }

    private MacroNode ParseMacro(Token begin)
    {
        var name = ExpectName();
        var parameters = new List<(string, Expr?)>();
        ExpectOperator("(");
        while (!IsOperator(")"))
        {
            if (parameters.Count > 0)
            {
                ExpectOperator(",");
                if (IsOperator(")"))
                {
                    break;
                }
            }
            var parameter = ExpectName();
            Expr? defaultValue = null;
            if (SkipOperator("="))
            {
                defaultValue = ParseExpression(allowConditional: true);
            }
            parameters.Add((parameter, defaultValue));
        }
        ExpectOperator(")");
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["endmacro"], out _);
        _index++;
        if (Current.Kind == TokenKind.Name && Current.Value == name)
        {
            _index++;
        }
        Expect(TokenKind.BlockEnd);
        return new MacroNode(begin.Position, name, parameters, body);
    }

    private static object ParseNumber(Token token, SourceText source)
    {
        if (token.Kind == TokenKind.Integer)
        {
            if (long.TryParse(token.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var l))
            {
                return l;
            }
            throw source.Error("Integer literal is too large", token.Position);
        }
        return double.Parse(token.Value, NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
