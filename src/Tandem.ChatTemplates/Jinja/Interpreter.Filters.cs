using System.Globalization;

namespace Tandem.ChatTemplates.Jinja;

internal sealed partial class Interpreter
{
    private object? ApplyFilter(FilterExpr filter)
    {
        var value = Evaluate(filter.Target);
        var args = filter.Arguments.Select(Evaluate).ToList();
        var keywords = filter.Keywords.Select(k => (k.Name, Evaluate(k.Value))).ToList();
        return Filter(filter.Name, value, args, keywords);
    }

    private object? Filter(string name, object? value, List<object?> args, List<(string Name, object? Value)> keywords)
    {
        switch (name)
        {
            case "trim":
                return Strip(Values.ToText(value), Arg(args, keywords, 0, "chars", null) as string, start: true, end: true);
            case "length" or "count":
                return Values.Length(value);
            case "upper":
                return Values.ToText(value).ToUpperInvariant();
            case "lower":
                return Values.ToText(value).ToLowerInvariant();
            case "capitalize":
                return Capitalize(Values.ToText(value));
            case "title":
                return Title(Values.ToText(value));
            case "string":
                return Values.ToText(value);
            case "safe":
                return value;
            case "tojson":
                var indent = Arg(args, keywords, 0, "indent", null) switch
                {
                    null => (int?)null,
                    long n and >= 0 and <= 64 => (int)n,
                    var other => throw Values.Error($"tojson indent must be a small integer, not {Values.Repr(other)}"),
                };
                var json = Json.Serialize(value, indent, Values.Truthy(Arg(args, keywords, 1, "sort_keys", false)));
                CheckStringLength(json.Length);
                return json;
            case "join":
                var separator = Values.ToText(Arg(args, keywords, 0, "d", ""));
                var attribute = Arg(args, keywords, 1, "attribute", null);
                var parts = Values.Iterate(value).Select(item => Values.ToText(attribute is null ? item : GetAttributePath(item, attribute)));
                var joined = string.Join(separator, parts);
                CheckStringLength(joined.Length);
                return joined;
            case "default" or "d":
                var useBoolean = Values.Truthy(Arg(args, keywords, 1, "boolean", false));
                return value is Undefined || (useBoolean && !Values.Truthy(value)) ? Arg(args, keywords, 0, "default_value", "") : value;
            case "first":
                return value switch
                {
                    string s => s.Length > 0 ? s[0].ToString() : new Undefined("first() of an empty string"),
                    _ => Values.Iterate(value) is { Count: > 0 } items ? items[0] : new Undefined("first() of an empty sequence"),
                };
            case "last":
                return value switch
                {
                    string s => s.Length > 0 ? s[^1].ToString() : new Undefined("last() of an empty string"),
                    _ => Values.Iterate(value) is { Count: > 0 } items ? items[^1] : new Undefined("last() of an empty sequence"),
                };
            case "replace":
                return Replace(Values.ToText(value), Values.ToText(Arg(args, keywords, 0, "old")), Values.ToText(Arg(args, keywords, 1, "new")), Arg(args, keywords, 2, "count", -1L));
            case "items":
                return value switch
                {
                    IReadOnlyDictionary<string, object?> dict => Items(dict),
                    Undefined => new List<object?>(),
                    _ => throw Values.Error($"items filter expects a mapping, got {Values.TypeName(value)}"),
                };
            case "list":
                return Values.Iterate(value).ToList();
            case "selectattr" or "rejectattr":
                return SelectAttributes(value, args, keywords, select: name == "selectattr");
            case "select" or "reject":
                return Values.Iterate(value)
                    .Where(item => (args.Count == 0 ? Values.Truthy(item) : Test(Values.ToText(args[0]), item, args.Skip(1).ToList())) == (name == "select"))
                    .ToList();
            case "map":
                return Map(value, args, keywords);
            case "int":
                return ToInteger(value, Arg(args, keywords, 0, "default", 0L));
            case "float":
                return ToFloat(value, Arg(args, keywords, 0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    bool b => b ? 1L : 0L,
                    _ => throw Values.Error($"bad operand type for abs(): '{Values.TypeName(value)}'"),
                };
            case "round":
                return Round(value, Arg(args, keywords, 0, "precision", 0L), Values.ToText(Arg(args, keywords, 1, "method", "common")));
            case "reverse":
                return value is string text ? new string(text.Reverse().ToArray()) : Values.Iterate(value).Reverse().ToList();
            case "unique":
                return Unique(value, Values.Truthy(Arg(args, keywords, 0, "case_sensitive", false)), Arg(args, keywords, 1, "attribute", null));
            case "sort":
                return Sort(value, Values.Truthy(Arg(args, keywords, 0, "reverse", false)), Values.Truthy(Arg(args, keywords, 1, "case_sensitive", false)), Arg(args, keywords, 2, "attribute", null));
            case "sum":
                var sumAttribute = Arg(args, keywords, 0, "attribute", null);
                object? total = Arg(args, keywords, 1, "start", 0L);
                foreach (var item in Values.Iterate(value))
                {
                    total = Arithmetic("+", total, sumAttribute is null ? item : GetAttributePath(item, sumAttribute));
                }
                return total;
            case "min" or "max":
                var candidates = Values.Iterate(value);
                if (candidates.Count == 0)
                {
                    return new Undefined($"{name}() of an empty sequence");
                }
                var best = candidates[0];
                foreach (var item in candidates.Skip(1))
                {
                    var c = Values.Compare(item, best);
                    if (name == "min" ? c < 0 : c > 0)
                    {
                        best = item;
                    }
                }
                return best;
            case "indent":
                return Indent(Values.ToText(value), Arg(args, keywords, 0, "width", 4L), Values.Truthy(Arg(args, keywords, 1, "first", false)), Values.Truthy(Arg(args, keywords, 2, "blank", false)));
            case "wordcount":
                return (long)Split(Values.ToText(value), null, -1L).Count;
            default:
                throw Values.Error($"No filter named '{name}'");
        }
    }

    /// <summary>Attribute or dotted path (<c>"function.name"</c>) on an item, as <c>map(attribute=...)</c> reads it.</summary>
    private static object? GetAttributePath(object? item, object? attribute)
    {
        if (attribute is long index)
        {
            return GetItem(item, index);
        }
        foreach (var part in Values.ToText(attribute).Split('.'))
        {
            item = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && item is IReadOnlyList<object?>
                ? GetItem(item, i)
                : GetItem(item, part);
        }
        return item;
    }

    private static List<object?> SelectAttributes(object? value, List<object?> args, List<(string Name, object? Value)> keywords, bool select)
    {
        var attribute = Arg(args, keywords, 0, "attribute");
        var testName = args.Count > 1 ? Values.ToText(args[1]) : null;
        var testArgs = args.Skip(2).ToList();
        return Values.Iterate(value)
            .Where(item =>
            {
                var field = GetAttributePath(item, attribute);
                var passed = testName is null ? Values.Truthy(field) : Test(testName, field, testArgs);
                return passed == select;
            })
            .ToList();
    }

    private List<object?> Map(object? value, List<object?> args, List<(string Name, object? Value)> keywords)
    {
        var items = Values.Iterate(value);
        if (args.Count == 0 && keywords.Any(k => k.Name == "attribute"))
        {
            var attribute = keywords.First(k => k.Name == "attribute").Value;
            var hasDefault = keywords.Any(k => k.Name == "default");
            var defaultValue = hasDefault ? keywords.First(k => k.Name == "default").Value : null;
            return items.Select(item =>
            {
                var field = GetAttributePath(item, attribute);
                return hasDefault && field is Undefined ? defaultValue : field;
            }).ToList();
        }
        if (args.Count == 0)
        {
            throw Values.Error("map() needs a filter name or attribute=");
        }
        var filterName = Values.ToText(args[0]);
        var filterArgs = args.Skip(1).ToList();
        return items.Select(item => Filter(filterName, item, filterArgs, keywords)).ToList();
    }

    private static object? ToInteger(object? value, object? defaultValue)
    {
        switch (value)
        {
            case long:
                return value;
            case bool b:
                return b ? 1L : 0L;
            case double d when !double.IsNaN(d) && !double.IsInfinity(d) && Math.Abs(d) < 9.2e18:
                return (long)Math.Truncate(d);
            case string s:
                var trimmed = s.Trim().Replace("_", "", StringComparison.Ordinal);
                if (long.TryParse(trimmed, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                {
                    return l;
                }
                if (double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) && Math.Abs(parsed) < 9.2e18)
                {
                    return (long)Math.Truncate(parsed);
                }
                return defaultValue;
            default:
                return defaultValue;
        }
    }

    private static object? ToFloat(object? value, object? defaultValue) => value switch
    {
        long l => (double)l,
        double => value,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => defaultValue,
    };

    private static double Round(object? value, object? precision, string method)
    {
        var number = Values.ToDouble(value);
        var digits = precision is long p ? (int)Math.Clamp(p, 0, 15) : 0;
        var scale = Math.Pow(10, digits);
        return method switch
        {
            "common" => Math.Round(number, digits, MidpointRounding.AwayFromZero),
            "floor" => Math.Floor(number * scale) / scale,
            "ceil" => Math.Ceiling(number * scale) / scale,
            _ => throw Values.Error("method must be 'common', 'ceil' or 'floor'"),
        };
    }

    private static object? SortKey(object? item, bool caseSensitive, object? attribute)
    {
        var key = attribute is null ? item : GetAttributePath(item, attribute);
        return !caseSensitive && key is string s ? s.ToLowerInvariant() : key;
    }

    private static List<object?> Unique(object? value, bool caseSensitive, object? attribute)
    {
        var result = new List<object?>();
        var seen = new List<object?>();
        foreach (var item in Values.Iterate(value))
        {
            var key = SortKey(item, caseSensitive, attribute);
            if (!seen.Any(s => Values.Equal(s, key)))
            {
                seen.Add(key);
                result.Add(item);
            }
        }
        return result;
    }

    private static List<object?> Sort(object? value, bool reverse, bool caseSensitive, object? attribute)
    {
        var items = Values.Iterate(value).ToList();
        var keys = items.Select(item => SortKey(item, caseSensitive, attribute)).ToList();
        var order = Enumerable.Range(0, items.Count).ToList();
        // Stable sort on precomputed keys, as Python's sorted().
        var sorted = order.OrderBy(i => keys[i], Comparer<object?>.Create(Values.Compare)).ToList();
        if (reverse)
        {
            sorted = order.OrderByDescending(i => keys[i], Comparer<object?>.Create(Values.Compare)).ToList();
        }
        return sorted.Select(i => items[i]).ToList();
    }

    private string Indent(string text, object? width, bool first, bool blank)
    {
        var prefix = width is string s ? s : new string(' ', (int)Math.Clamp(width is long w ? w : 4, 0, 256));
        var lines = text.Split('\n');
        var sb = new System.Text.StringBuilder();
        for (var i = 0; i < lines.Length; i++)
        {
            if (i > 0)
            {
                sb.Append('\n');
            }
            var line = lines[i];
            if ((i > 0 || first) && (blank || line.Trim().Length > 0))
            {
                sb.Append(prefix);
            }
            sb.Append(line);
            CheckStringLength(sb.Length);
        }
        return sb.ToString();
    }
}
