namespace Tandem.ChatTemplates.Jinja;

internal sealed partial class Interpreter
{
    private object? Evaluate(Expr expr)
    {
        Charge(1);
        EnsureStack();
        try
        {
            return expr switch
            {
                LiteralExpr literal => literal.Value,
                NameExpr name => _scope.TryGet(name.Name, out var value) ? value : new Undefined($"'{name.Name}' is undefined"),
                ListExpr list => list.Items.Select(Evaluate).ToList(),
                DictExpr dict => EvaluateDict(dict),
                UnaryExpr unary => EvaluateUnary(unary),
                BinaryExpr binary => EvaluateBinary(binary),
                CompareExpr compare => EvaluateCompare(compare),
                ConditionalExpr conditional => Values.Truthy(Evaluate(conditional.Condition))
                    ? Evaluate(conditional.Then)
                    : conditional.Else is null ? new Undefined("the conditional expression has no else branch") : Evaluate(conditional.Else),
                AttributeExpr attribute => GetAttribute(Evaluate(attribute.Target), attribute.Name),
                IndexExpr index => GetItem(Evaluate(index.Target), Evaluate(index.Index)),
                SliceExpr slice => EvaluateSlice(slice),
                CallExpr call => EvaluateCall(call),
                FilterExpr filter => ApplyFilter(filter),
                TestExpr test => ApplyTest(test),
                _ => throw Values.Error($"Unknown expression {expr.GetType().Name}"),
            };
        }
        catch (TemplateRuntimeException e) when (e.Position < 0)
        {
            e.Position = expr.Position;
            throw;
        }
    }

    private Dictionary<string, object?> EvaluateDict(DictExpr dict)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (keyExpr, valueExpr) in dict.Items)
        {
            var key = Evaluate(keyExpr);
            if (key is not (string or long or bool or double))
            {
                throw Values.Error($"Dictionary keys must be strings or numbers, not {Values.TypeName(key)}");
            }
            result[Values.ToText(key)] = Evaluate(valueExpr);
        }
        return result;
    }

    private object? EvaluateUnary(UnaryExpr unary)
    {
        var operand = Evaluate(unary.Operand);
        switch (unary.Operator)
        {
            case "not":
                return !Values.Truthy(operand);
            case "-":
                return operand switch
                {
                    long l => (object)checked(-l),
                    double d => -d,
                    bool b => b ? -1L : 0L,
                    _ => throw OperandError("unary -", operand, null),
                };
            default:
                return Values.IsNumber(operand) ? (operand is bool b2 ? (b2 ? 1L : 0L) : operand) : throw OperandError("unary +", operand, null);
        }
    }

    private static TemplateRuntimeException OperandError(string op, object? left, object? right)
    {
        if (left is Undefined u)
        {
            return Values.Error(u.Description);
        }
        if (right is Undefined v)
        {
            return Values.Error(v.Description);
        }
        return right is null && op.StartsWith("unary", StringComparison.Ordinal)
            ? Values.Error($"bad operand type for {op}: '{Values.TypeName(left)}'")
            : Values.Error($"unsupported operand type(s) for {op}: '{Values.TypeName(left)}' and '{Values.TypeName(right)}'");
    }

    private object? EvaluateBinary(BinaryExpr binary)
    {
        if (binary.Operator == "and")
        {
            var left = Evaluate(binary.Left);
            return Values.Truthy(left) ? Evaluate(binary.Right) : left;
        }
        if (binary.Operator == "or")
        {
            var left = Evaluate(binary.Left);
            return Values.Truthy(left) ? left : Evaluate(binary.Right);
        }
        return Arithmetic(binary.Operator, Evaluate(binary.Left), Evaluate(binary.Right));
    }

    private object? Arithmetic(string op, object? a, object? b)
    {
        if (op == "~")
        {
            return Concat(Values.ToText(a), Values.ToText(b));
        }
        if (Values.IsNumber(a) && Values.IsNumber(b))
        {
            return NumberArithmetic(op, a, b);
        }
        switch (op)
        {
            case "+" when a is string sa && b is string sb:
                return Concat(sa, sb);
            case "+" when a is IReadOnlyList<object?> la && b is IReadOnlyList<object?> lb:
                CheckListLength((long)la.Count + lb.Count);
                return la.Concat(lb).ToList();
            case "*" when a is string || b is string:
                if ((a as string ?? b as string) is { } text && (a is long ? a : b) is long times)
                {
                    var length = Math.Max(0, times) * text.Length;
                    CheckStringLength(length);
                    return Repeat(text, (int)Math.Max(0, times));
                }
                break;
            case "*" when a is IReadOnlyList<object?> || b is IReadOnlyList<object?>:
                if ((a as IReadOnlyList<object?> ?? b as IReadOnlyList<object?>) is { } items && (a is long ? a : b) is long n)
                {
                    CheckListLength(Math.Max(0, n) * items.Count);
                    return Enumerable.Repeat(items, (int)Math.Max(0, n)).SelectMany(x => x).ToList();
                }
                break;
            default:
                break;
        }
        throw OperandError(op, a, b);
    }

    private static object NumberArithmetic(string op, object? a, object? b)
    {
        if (a is bool ba)
        {
            a = ba ? 1L : 0L;
        }
        if (b is bool bb)
        {
            b = bb ? 1L : 0L;
        }
        if (a is long x && b is long y)
        {
            try
            {
                switch (op)
                {
                    case "+": return checked(x + y);
                    case "-": return checked(x - y);
                    case "*": return checked(x * y);
                    case "/": return y == 0 ? throw Values.Error("division by zero") : (double)x / y;
                    case "//": return y == 0 ? throw Values.Error("integer division or modulo by zero") : FloorDiv(x, y);
                    case "%": return y == 0 ? throw Values.Error("integer division or modulo by zero") : x - (FloorDiv(x, y) * y);
                    case "**": return y < 0 ? Math.Pow(x, y) : (object)IntegerPower(x, y);
                    default: break;
                }
            }
            catch (OverflowException)
            {
                throw Values.Error("Integer result is too large");
            }
        }
        var p = Values.ToDouble(a);
        var q = Values.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw Values.Error("float division by zero") : p / q,
            "//" => q == 0 ? throw Values.Error("float divmod()") : Math.Floor(p / q),
            "%" => q == 0 ? throw Values.Error("float modulo") : p - (Math.Floor(p / q) * q),
            "**" => Math.Pow(p, q),
            _ => throw Values.Error($"Unknown operator {op}"),
        };
    }

    private static long FloorDiv(long x, long y)
    {
        var q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static long IntegerPower(long x, long y)
    {
        long result = 1;
        while (y > 0)
        {
            if ((y & 1) != 0)
            {
                result = checked(result * x);
            }
            y >>= 1;
            if (y > 0)
            {
                x = checked(x * x);
            }
        }
        return result;
    }

    private static string Repeat(string text, int times)
    {
        if (text.Length == 1)
        {
            return new string(text[0], times);
        }
        var sb = new System.Text.StringBuilder(text.Length * times);
        for (var i = 0; i < times; i++)
        {
            sb.Append(text);
        }
        return sb.ToString();
    }

    private string Concat(string a, string b)
    {
        CheckStringLength((long)a.Length + b.Length);
        return string.Concat(a, b);
    }

    private void CheckStringLength(long length)
    {
        if (length > Limits.MaxStringLength)
        {
            throw Values.Error($"String exceeds {Limits.MaxStringLength} characters");
        }
        Charge(length);
    }

    private void CheckListLength(long length)
    {
        if (length > Limits.MaxListLength)
        {
            throw Values.Error($"List exceeds {Limits.MaxListLength} items");
        }
        Charge(length);
    }

    private bool EvaluateCompare(CompareExpr compare)
    {
        var left = Evaluate(compare.First);
        foreach (var (op, operandExpr) in compare.Rest)
        {
            var right = Evaluate(operandExpr);
            var result = op switch
            {
                "==" => Values.Equal(left, right),
                "!=" => !Values.Equal(left, right),
                "<" => Values.Compare(left, right) < 0,
                "<=" => Values.Compare(left, right) <= 0,
                ">" => Values.Compare(left, right) > 0,
                ">=" => Values.Compare(left, right) >= 0,
                "in" => Values.Contains(right, left),
                "not in" => !Values.Contains(right, left),
                _ => throw Values.Error($"Unknown operator {op}"),
            };
            if (!result)
            {
                return false;
            }
            left = right;
        }
        return true;
    }

    /// <summary>Jinja's <c>getattr</c>: dict items, namespace attributes; undefined for anything else.</summary>
    private static object? GetAttribute(object? target, string name) => target switch
    {
        Undefined u => throw Values.Error(u.Description),
        IReadOnlyDictionary<string, object?> dict => dict.TryGetValue(name, out var value)
            ? value
            : new Undefined($"'dict object' has no attribute '{name}'"),
        Namespace ns => ns.Attributes.TryGetValue(name, out var value)
            ? value
            : new Undefined($"'Namespace' object has no attribute '{name}'"),
        _ => new Undefined($"'{Values.TypeName(target)}' object has no attribute '{name}'"),
    };

    private static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Undefined u:
                throw Values.Error(u.Description);
            case IReadOnlyDictionary<string, object?> dict:
                return key is string s && dict.TryGetValue(s, out var value)
                    ? value
                    : new Undefined($"'dict object' has no attribute {Values.Repr(key)}");
            case IReadOnlyList<object?> list when key is long or bool:
                var index = key is bool b ? (b ? 1 : 0) : (long)key;
                if (index < 0)
                {
                    index += list.Count;
                }
                return index >= 0 && index < list.Count ? list[(int)index] : new Undefined($"list index {key} out of range");
            case string text when key is long:
                var i = (long)key;
                if (i < 0)
                {
                    i += text.Length;
                }
                return i >= 0 && i < text.Length ? text[(int)i].ToString() : new Undefined($"string index {key} out of range");
            case Namespace ns when key is string name:
                return GetAttribute(ns, name);
            default:
                return new Undefined($"'{Values.TypeName(target)}' object has no item {Values.Repr(key)}");
        }
    }

    private object? EvaluateSlice(SliceExpr slice)
    {
        var target = Evaluate(slice.Target);
        long? Bound(Expr? e)
        {
            if (e is null)
            {
                return null;
            }
            return Evaluate(e) switch
            {
                null => null,
                long l => l,
                bool b => b ? 1 : 0,
                var v => throw Values.Error($"slice indices must be integers or None, not {Values.TypeName(v)}"),
            };
        }
        var start = Bound(slice.Start);
        var stop = Bound(slice.Stop);
        var step = Bound(slice.Step) ?? 1;
        if (step == 0)
        {
            throw Values.Error("slice step cannot be zero");
        }
        switch (target)
        {
            case string s:
                var chars = SliceIndices(s.Length, start, stop, step).Select(i => s[i]).ToArray();
                return new string(chars);
            case IReadOnlyList<object?> list:
                return SliceIndices(list.Count, start, stop, step).Select(i => list[i]).ToList();
            case Undefined u:
                throw Values.Error(u.Description);
            default:
                throw Values.Error($"'{Values.TypeName(target)}' object is not subscriptable");
        }
    }

    /// <summary>The indices Python's <c>seq[start:stop:step]</c> selects.</summary>
    private static IEnumerable<int> SliceIndices(int length, long? start, long? stop, long step)
    {
        long Clamp(long? value, long defaultValue, long low, long high)
        {
            if (value is null)
            {
                return defaultValue;
            }
            var v = value.Value < 0 ? value.Value + length : value.Value;
            return Math.Clamp(v, low, high);
        }
        if (step > 0)
        {
            var from = Clamp(start, 0, 0, length);
            var to = Clamp(stop, length, 0, length);
            for (var i = from; i < to; i += step)
            {
                yield return (int)i;
            }
        }
        else
        {
            var from = Clamp(start, length - 1, -1, length - 1);
            var to = Clamp(stop, -1, -1, length - 1);
            for (var i = from; i > to; i += step)
            {
                yield return (int)i;
            }
        }
    }

    private object? EvaluateCall(CallExpr call)
    {
        var args = call.Arguments.Select(Evaluate).ToList();
        var keywords = call.Keywords.Select(k => (k.Name, Evaluate(k.Value))).ToList();
        if (call.Callee is AttributeExpr attribute)
        {
            var target = Evaluate(attribute.Target);
            if (TryCallMethod(target, attribute.Name, args, keywords, out var result))
            {
                return result;
            }
            return Invoke(GetAttribute(target, attribute.Name), args, keywords);
        }
        return Invoke(Evaluate(call.Callee), args, keywords);
    }

    private static object? Invoke(object? callee, List<object?> args, List<(string, object?)> keywords) => callee switch
    {
        Callable callable => callable.Invoke(args, keywords),
        Undefined u => throw Values.Error(u.Description),
        _ => throw Values.Error($"'{Values.TypeName(callee)}' object is not callable"),
    };
}
