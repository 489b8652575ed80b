using System.Text;

namespace Tandem.ChatTemplates.Jinja;

internal sealed partial class Interpreter
{
    /// <summary>Python methods templates call on strings and dicts (<c>content.strip()</c>, <c>message.get('x')</c>).</summary>
    private bool TryCallMethod(object? target, string name, List<object?> args, List<(string Name, object? Value)> keywords, out object? result)
    {
        result = null;
        switch (target)
        {
            case string s:
                return TryCallStringMethod(s, name, args, keywords, out result);
            case IReadOnlyDictionary<string, object?> dict:
                switch (name)
                {
                    case "get":
                        result = dict.TryGetValue(Values.ToText(Arg(args, keywords, 0, "key")), out var value)
                            ? value
                            : Arg(args, keywords, 1, "default", null);
                        return true;
                    case "items":
                        result = Items(dict);
                        return true;
                    case "keys":
                        result = dict.Keys.Cast<object?>().ToList();
                        return true;
                    case "values":
                        result = dict.Values.ToList();
                        return true;
                    default:
                        return false;
                }
            default:
                return false;
        }
    }

    private static List<object?> Items(IReadOnlyDictionary<string, object?> dict) =>
        dict.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList();

    private bool TryCallStringMethod(string s, string name, List<object?> args, List<(string Name, object? Value)> keywords, out object? result)
    {
        string? Chars(int index) => Arg(args, keywords, index, "chars", null) is string c ? c : null;
        switch (name)
        {
            case "strip":
                result = Strip(s, Chars(0), start: true, end: true);
                return true;
            case "lstrip":
                result = Strip(s, Chars(0), start: true, end: false);
                return true;
            case "rstrip":
                result = Strip(s, Chars(0), start: false, end: true);
                return true;
            case "upper":
                result = s.ToUpperInvariant();
                return true;
            case "lower":
                result = s.ToLowerInvariant();
                return true;
            case "title":
                result = Title(s);
                return true;
            case "capitalize":
                result = Capitalize(s);
                return true;
            case "startswith":
            case "endswith":
                var affixes = Arg(args, keywords, 0, "prefix") switch
                {
                    string one => [one],
                    IReadOnlyList<object?> many => many.Select(Values.ToText).ToList(),
                    var other => throw Values.Error($"{name} first arg must be str or a tuple of str, not {Values.TypeName(other)}"),
                };
                result = name == "startswith"
                    ? affixes.Any(a => s.StartsWith(a, StringComparison.Ordinal))
                    : affixes.Any(a => s.EndsWith(a, StringComparison.Ordinal));
                return true;
            case "split":
                result = Split(s, Arg(args, keywords, 0, "sep", null), Arg(args, keywords, 1, "maxsplit", -1L));
                return true;
            case "splitlines":
                result = s.Split('\n').Select(line => (object?)line.TrimEnd('\r')).ToList();
                if (s.EndsWith('\n'))
                {
                    ((List<object?>)result).RemoveAt(((List<object?>)result).Count - 1);
                }
                return true;
            case "replace":
                result = Replace(s, Values.ToText(Arg(args, keywords, 0, "old")), Values.ToText(Arg(args, keywords, 1, "new")), Arg(args, keywords, 2, "count", -1L));
                return true;
            case "find":
                result = (long)s.IndexOf(Values.ToText(Arg(args, keywords, 0, "sub")), StringComparison.Ordinal);
                return true;
            case "count":
                var sub = Values.ToText(Arg(args, keywords, 0, "sub"));
                result = sub.Length == 0 ? s.Length + 1L : (long)((s.Length - s.Replace(sub, "", StringComparison.Ordinal).Length) / sub.Length);
                return true;
            case "join":
                var joined = string.Join(s, Values.Iterate(Arg(args, keywords, 0, "iterable")).Select(Values.ToText));
                CheckStringLength(joined.Length);
                result = joined;
                return true;
            case "isdigit":
                result = s.Length > 0 && s.All(char.IsDigit);
                return true;
            case "isspace":
                result = s.Length > 0 && s.All(char.IsWhiteSpace);
                return true;
            default:
                result = null;
                return false;
        }
    }

    /// <summary>Positional argument <paramref name="index"/> or keyword <paramref name="name"/>; required when no default is given.</summary>
    private static object? Arg(List<object?> args, List<(string Name, object? Value)> keywords, int index, string name)
    {
        if (index < args.Count)
        {
            return args[index];
        }
        foreach (var (k, v) in keywords)
        {
            if (k == name)
            {
                return v;
            }
        }
        throw Values.Error($"missing required argument '{name}'");
    }

    private static object? Arg(List<object?> args, List<(string Name, object? Value)> keywords, int index, string name, object? defaultValue)
    {
        if (index < args.Count)
        {
            return args[index];
        }
        foreach (var (k, v) in keywords)
        {
            if (k == name)
            {
                return v;
            }
        }
        return defaultValue;
    }

    internal static string Strip(string s, string? chars, bool start, bool end)
    {
        var from = 0;
        var to = s.Length;
        bool Strippable(char c) => chars is null ? char.IsWhiteSpace(c) : chars.Contains(c, StringComparison.Ordinal);
        if (start)
        {
            while (from < to && Strippable(s[from]))
            {
                from++;
            }
        }
        if (end)
        {
            while (to > from && Strippable(s[to - 1]))
            {
                to--;
            }
        }
        return s[from..to];
    }

    internal static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousIsLetter = false;
        foreach (var c in s)
        {
            sb.Append(previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousIsLetter = char.IsLetter(c);
        }
        return sb.ToString();
    }

    internal static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static List<object?> Split(string s, object? separator, object? maxSplit)
    {
        var max = maxSplit is long m ? m : -1;
        var result = new List<object?>();
        if (separator is null or Undefined)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i]))
                {
                    i++;
                }
                if (i >= s.Length)
                {
                    break;
                }
                if (max >= 0 && result.Count == max)
                {
                    result.Add(s[i..].TrimEnd());
                    break;
                }
                var j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j]))
                {
                    j++;
                }
                result.Add(s[i..j]);
                i = j;
            }
            return result;
        }
        var sep = Values.ToText(separator);
        if (sep.Length == 0)
        {
            throw Values.Error("empty separator");
        }
        var parts = max < 0 ? s.Split(sep) : s.Split(sep, (int)Math.Min(int.MaxValue, max + 1));
        result.AddRange(parts);
        return result;
    }

    private string Replace(string s, string oldValue, string newValue, object? count)
    {
        var max = count is long c ? c : -1;
        if (oldValue.Length == 0 || max == 0)
        {
            return s;
        }
        var sb = new StringBuilder();
        var pos = 0;
        long done = 0;
        while (max < 0 || done < max)
        {
            var next = s.IndexOf(oldValue, pos, StringComparison.Ordinal);
            if (next < 0)
            {
                break;
            }
            sb.Append(s, pos, next - pos).Append(newValue);
            CheckStringLength(sb.Length);
            pos = next + oldValue.Length;
            done++;
        }
        sb.Append(s, pos, s.Length - pos);
        CheckStringLength(sb.Length);
        return sb.ToString();
    }
}
