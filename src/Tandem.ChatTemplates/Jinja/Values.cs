using System.Globalization;
using System.Text;

namespace Tandem.ChatTemplates.Jinja;

/// <summary>The value of a missing variable, attribute or item: falsy, renders as empty, errors on most uses.</summary>
internal sealed class Undefined
{
    public Undefined(string description) => Description = description;

    /// <summary>What was missing, for error messages, e.g. <c>'foo' is undefined</c>.</summary>
    public string Description { get; }
}

/// <summary>The object <c>namespace(...)</c> returns: the one value templates may assign attributes of.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable value: a built-in function or a macro.</summary>
internal sealed class Callable
{
    public Callable(string name, Func<IReadOnlyList<object?>, IReadOnlyList<(string Name, object? Value)>, object?> invoke)
    {
        Name = name;
        Invoke = invoke;
    }

    public string Name { get; }

    public Func<IReadOnlyList<object?>, IReadOnlyList<(string Name, object? Value)>, object?> Invoke { get; }
}

/// <summary>An error raised while rendering, at a source position; turned into a <see cref="ChatTemplateException"/>.</summary>
internal sealed class TemplateRuntimeException : Exception
{
    public TemplateRuntimeException(string message, bool raisedByTemplate = false)
        : base(message) => RaisedByTemplate = raisedByTemplate;

    public bool RaisedByTemplate { get; }

    public int Position { get; set; } = -1;
}

/// <summary>
/// Value model: null (none), <see cref="Undefined"/>, string, bool, long, double,
/// <c>IReadOnlyList&lt;object?&gt;</c>, <c>IReadOnlyDictionary&lt;string, object?&gt;</c> (insertion ordered),
/// <see cref="Namespace"/> and <see cref="Callable"/>. Semantics follow Python, as Jinja's do.
/// </summary>
internal static class Values
{
    public static TemplateRuntimeException Error(string message) => new(message);

    public static bool IsUndefined(object? value) => value is Undefined;

    public static bool Truthy(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        IReadOnlyList<object?> list => list.Count > 0,
        IReadOnlyDictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        IReadOnlyList<object?> => "list",
        IReadOnlyDictionary<string, object?> => "dict",
        Namespace => "Namespace",
        Callable => "function",
        _ => value.GetType().Name,
    };

    /// <summary>Python <c>str()</c>, as <c>{{ value }}</c> renders it.</summary>
    public static string ToText(object? value) => value switch
    {
        string s => s,
        Undefined => "",
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatDouble(d),
        _ => Repr(value),
    };

    /// <summary>Python <c>repr()</c>, used for lists and dicts rendered as text.</summary>
    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value, 0);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value, int depth)
    {
        if (depth > Limits.MaxDataDepth)
        {
            throw Error("Value is nested too deeply");
        }
        switch (value)
        {
            case string s:
                var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
                sb.Append(quote);
                foreach (var c in s)
                {
                    switch (c)
                    {
                        case '\\': sb.Append("\\\\"); break;
                        case '\n': sb.Append("\\n"); break;
                        case '\r': sb.Append("\\r"); break;
                        case '\t': sb.Append("\\t"); break;
                        default:
                            if (c == quote)
                            {
                                sb.Append('\\');
                            }
                            sb.Append(c);
                            break;
                    }
                }
                sb.Append(quote);
                break;
            case IReadOnlyList<object?> list:
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(", ");
                    }
                    AppendRepr(sb, list[i], depth + 1);
                }
                sb.Append(']');
                break;
            case IReadOnlyDictionary<string, object?> dict:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in dict)
                {
                    if (!first)
                    {
                        sb.Append(", ");
                    }
                    first = false;
                    AppendRepr(sb, k, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, v, depth + 1);
                }
                sb.Append('}');
                break;
            case Namespace:
                sb.Append("<Namespace>");
                break;
            case Callable c:
                sb.Append("<function ").Append(c.Name).Append('>');
                break;
            default:
                sb.Append(ToText(value));
                break;
        }
    }

    /// <summary>Python float repr: shortest round-trip digits, <c>1.0</c> for integral values, <c>1e+16</c> style exponents.</summary>
    public static string FormatDouble(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }
        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16)
        {
            var integral = d.ToString("F0", CultureInfo.InvariantCulture);
            return (d == 0 && double.IsNegative(d) ? "-0" : integral) + ".0";
        }
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        var e = r.IndexOf('E', StringComparison.Ordinal);
        if (e < 0)
        {
            return r;
        }
        var mantissa = r[..e];
        var exponent = int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return $"{mantissa}e{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
    }

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw Error($"Expected a number, got {TypeName(value)}"),
    };

    /// <summary>Python <c>==</c>: numbers (and bools) by value, strings ordinally, lists and dicts structurally.</summary>
    public static bool Equal(object? a, object? b, int depth = 0)
    {
        if (depth > Limits.MaxDataDepth)
        {
            throw Error("Value is nested too deeply");
        }
        if (ReferenceEquals(a, b))
        {
            return true;
        }
        switch (a)
        {
            case null:
                return b is null;
            case Undefined:
                return b is Undefined;
            case string sa:
                return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case long or double or bool when IsNumber(b):
                if (a is long la && b is long lb)
                {
                    return la == lb;
                }
                return ToDouble(a) == ToDouble(b);
            case IReadOnlyList<object?> listA:
                if (b is not IReadOnlyList<object?> listB || listA.Count != listB.Count)
                {
                    return false;
                }
                for (var i = 0; i < listA.Count; i++)
                {
                    if (!Equal(listA[i], listB[i], depth + 1))
                    {
                        return false;
                    }
                }
                return true;
            case IReadOnlyDictionary<string, object?> dictA:
                if (b is not IReadOnlyDictionary<string, object?> dictB || dictA.Count != dictB.Count)
                {
                    return false;
                }
                foreach (var (k, v) in dictA)
                {
                    if (!dictB.TryGetValue(k, out var other) || !Equal(v, other, depth + 1))
                    {
                        return false;
                    }
                }
                return true;
            default:
                return false;
        }
    }

    /// <summary>Python ordering for <c>&lt; &lt;= &gt; &gt;=</c>, <c>sort</c>, <c>min</c>, <c>max</c>.</summary>
    public static int Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is long la && b is long lb)
            {
                return la.CompareTo(lb);
            }
            return ToDouble(a).CompareTo(ToDouble(b));
        }
        if (a is string sa && b is string sb)
        {
            return string.CompareOrdinal(sa, sb);
        }
        if (a is IReadOnlyList<object?> listA && b is IReadOnlyList<object?> listB)
        {
            for (var i = 0; i < Math.Min(listA.Count, listB.Count); i++)
            {
                var c = Compare(listA[i], listB[i]);
                if (c != 0)
                {
                    return c;
                }
            }
            return listA.Count.CompareTo(listB.Count);
        }
        throw Error($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    /// <summary>The items <c>for</c> iterates: list items, dict keys, string characters; nothing for undefined.</summary>
    public static IReadOnlyList<object?> Iterate(object? value) => value switch
    {
        IReadOnlyList<object?> list => list,
        IReadOnlyDictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => StringElements(s),
        Undefined => [],
        _ => throw Error($"'{TypeName(value)}' object is not iterable"),
    };

    private static List<object?> StringElements(string s)
    {
        var result = new List<object?>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            // Python iterates code points: keep surrogate pairs together.
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                result.Add(s[i].ToString());
            }
        }
        return result;
    }

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw Error($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        IReadOnlyList<object?> list => list.Any(x => Equal(x, item)),
        IReadOnlyDictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        Undefined => false,
        _ => throw Error($"argument of type '{TypeName(container)}' is not iterable"),
    };

    public static long Length(object? value) => value switch
    {
        string s => s.Length,
        IReadOnlyList<object?> list => list.Count,
        IReadOnlyDictionary<string, object?> dict => dict.Count,
        Undefined => 0,
        _ => throw Error($"object of type '{TypeName(value)}' has no len()"),
    };
}
