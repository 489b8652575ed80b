namespace Tandem.ChatTemplates.Jinja;

internal sealed partial class Parser
{
    private static readonly HashSet<string> CompareOperators = ["==", "!=", "<", "<=", ">", ">="];

    /// <summary>An expression, or a tuple (as a list) when commas follow: <c>a, b</c>.</summary>
    private Expr ParseTuple(bool allowConditional)
    {
        var start = Current;
        var first = ParseExpression(allowConditional);
        if (!IsOperator(","))
        {
            return first;
        }
        var items = new List<Expr> { first };
        while (SkipOperator(","))
        {
            if (!StartsExpression())
            {
                break;
            }
            items.Add(ParseExpression(allowConditional));
        }
        return new ListExpr(start.Position, items);
    }

    private bool StartsExpression() => Current.Kind switch
    {
        TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Operator => Current.Value is "(" or "[" or "{" or "-" or "+",
        _ => false,
    };

    private Expr ParseExpression(bool allowConditional) => allowConditional ? ParseConditional() : ParseOr();

    private Expr ParseConditional()
    {
        var expr = ParseOr();
        while (IsName("if"))
        {
            var token = Next();
            Enter(token);
            var condition = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseConditional() : null;
            Leave();
            expr = new ConditionalExpr(token.Position, condition, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            var token = Next();
            left = new BinaryExpr(token.Position, "or", left, ParseAnd());
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            var token = Next();
            left = new BinaryExpr(token.Position, "and", left, ParseNot());
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            var token = Next();
            Enter(token);
            var operand = ParseNot();
            Leave();
            return new UnaryExpr(token.Position, "not", operand);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var start = Current;
        var first = ParseMath1();
        List<(string, Expr)>? rest = null;
        while (true)
        {
            string op;
            if (Current.Kind == TokenKind.Operator && CompareOperators.Contains(Current.Value))
            {
                op = Next().Value;
            }
            else if (SkipName("in"))
            {
                op = "in";
            }
            else if (IsName("not") && _tokens[_index + 1].Kind == TokenKind.Name && _tokens[_index + 1].Value == "in")
            {
                _index += 2;
                op = "not in";
            }
            else
            {
                break;
            }
            (rest ??= []).Add((op, ParseMath1()));
        }
        return rest is null ? first : new CompareExpr(start.Position, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (IsOperator("+") || IsOperator("-"))
        {
            var token = Next();
            left = new BinaryExpr(token.Position, token.Value, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (IsOperator("~"))
        {
            var token = Next();
            left = new BinaryExpr(token.Position, "~", left, ParseMath2());
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (IsOperator("*") || IsOperator("/") || IsOperator("//") || IsOperator("%"))
        {
            var token = Next();
            left = new BinaryExpr(token.Position, token.Value, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (IsOperator("**"))
        {
            var token = Next();
            left = new BinaryExpr(token.Position, "**", left, ParseUnary(withFilter: true));
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        var token = Current;
        Enter(token);
        Expr expr;
        if (IsOperator("-") || IsOperator("+"))
        {
            _index++;
            expr = new UnaryExpr(token.Position, token.Value, ParseUnary(withFilter: false));
        }
        else
        {
            expr = ParsePrimary();
        }
        expr = ParsePostfix(expr);
        if (withFilter)
        {
            expr = ParseFiltersAndTests(expr);
        }
        Leave();
        return expr;
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(token.Position, true),
                    "false" or "False" => new LiteralExpr(token.Position, false),
                    "none" or "None" => new LiteralExpr(token.Position, null),
                    _ => new NameExpr(token.Position, token.Value),
                };
            case TokenKind.String:
                var text = token.Value;
                while (Current.Kind == TokenKind.String)
                {
                    text += Next().Value;
                }
                return new LiteralExpr(token.Position, text);
            case TokenKind.Integer:
            case TokenKind.Float:
                return new LiteralExpr(token.Position, ParseNumber(token, _source));
            case TokenKind.Operator when token.Value == "(":
                if (SkipOperator(")"))
                {
                    return new ListExpr(token.Position, []);
                }
                var inner = ParseTuple(allowConditional: true);
                ExpectOperator(")");
                return inner;
            case TokenKind.Operator when token.Value == "[":
                var items = new List<Expr>();
                while (!IsOperator("]"))
                {
                    if (items.Count > 0)
                    {
                        ExpectOperator(",");
                        if (IsOperator("]"))
                        {
                            break;
                        }
                    }
                    items.Add(ParseExpression(allowConditional: true));
                }
                ExpectOperator("]");
                return new ListExpr(token.Position, items);
            case TokenKind.Operator when token.Value == "{":
                var pairs = new List<(Expr, Expr)>();
                while (!IsOperator("}"))
                {
                    if (pairs.Count > 0)
                    {
                        ExpectOperator(",");
                        if (IsOperator("}"))
                        {
                            break;
                        }
                    }
                    var key = ParseExpression(allowConditional: true);
                    ExpectOperator(":");
                    pairs.Add((key, ParseExpression(allowConditional: true)));
                }
                ExpectOperator("}");
                return new DictExpr(token.Position, pairs);
            default:
                throw Error($"Unexpected {Describe(token)}", token);
        }
    }

    private Expr ParsePostfix(Expr expr)
    {
        while (true)
        {
            var token = Current;
            if (SkipOperator("."))
            {
                if (Current.Kind == TokenKind.Integer)
                {
                    expr = new IndexExpr(token.Position, expr, new LiteralExpr(Current.Position, ParseNumber(Next(), _source)));
                }
                else
                {
                    expr = new AttributeExpr(token.Position, expr, ExpectName());
                }
            }
            else if (SkipOperator("["))
            {
                expr = ParseSubscript(token, expr);
            }
            else if (SkipOperator("("))
            {
                var (args, keywords) = ParseCallArguments();
                expr = new CallExpr(token.Position, expr, args, keywords);
            }
            else
            {
                return expr;
            }
        }
    }

    private Expr ParseSubscript(Token token, Expr target)
    {
        Expr? start = null;
        if (!IsOperator(":"))
        {
            start = ParseExpression(allowConditional: true);
            if (SkipOperator("]"))
            {
                return new IndexExpr(token.Position, target, start);
            }
        }
        ExpectOperator(":");
        Expr? stop = null;
        Expr? step = null;
        if (!IsOperator("]") && !IsOperator(":"))
        {
            stop = ParseExpression(allowConditional: true);
        }
        if (SkipOperator(":") && !IsOperator("]"))
        {
            step = ParseExpression(allowConditional: true);
        }
        ExpectOperator("]");
        return new SliceExpr(token.Position, target, start, stop, step);
    }

    /// <summary>Arguments after an opening parenthesis, through the closing one.</summary>
    private (List<Expr> Arguments, List<(string, Expr)> Keywords) ParseCallArguments()
    {
        var args = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        while (!IsOperator(")"))
        {
            if (args.Count + keywords.Count > 0)
            {
                ExpectOperator(",");
                if (IsOperator(")"))
                {
                    break;
                }
            }
            if (Current.Kind == TokenKind.Name && _tokens[_index + 1] is { Kind: TokenKind.Operator, Value: "=" })
            {
                var name = Next().Value;
                _index++;
                keywords.Add((name, ParseExpression(allowConditional: true)));
            }
            else
            {
                if (keywords.Count > 0)
                {
                    throw Error("Positional argument after keyword argument", Current);
                }
                args.Add(ParseExpression(allowConditional: true));
            }
        }
        ExpectOperator(")");
        return (args, keywords);
    }

    private Expr ParseFiltersAndTests(Expr expr)
    {
        while (true)
        {
            var token = Current;
            if (SkipOperator("|"))
            {
                var name = ExpectName();
                List<Expr> args = [];
                List<(string, Expr)> keywords = [];
                if (SkipOperator("("))
                {
                    (args, keywords) = ParseCallArguments();
                }
                expr = new FilterExpr(token.Position, expr, name, args, keywords);
            }
            else if (SkipName("is"))
            {
                var negated = SkipName("not");
                var name = ExpectName();
                List<Expr> args = [];
                if (SkipOperator("("))
                {
                    var (positional, keywords) = ParseCallArguments();
                    args = positional;
                    args.AddRange(keywords.Select(k => k.Item2));
                }
                else if (StartsTestArgument())
                {
                    args.Add(ParsePostfix(ParsePrimary()));
                }
                expr = new TestExpr(token.Position, expr, name, args, negated);
            }
            else
            {
                return expr;
            }
        }
    }

    private bool StartsTestArgument() => Current.Kind switch
    {
        TokenKind.Name => Current.Value is not ("else" or "or" or "and" or "if" or "is" or "in" or "not"),
        TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Operator => Current.Value is "[" or "{",
        _ => false,
    };
}
