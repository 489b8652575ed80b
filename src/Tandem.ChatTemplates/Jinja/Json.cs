using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Tandem.ChatTemplates.Jinja;

/// <summary>
/// JSON as Hugging Face's <c>tojson</c> filter writes it (Python <c>json.dumps(ensure_ascii=False)</c>): separators
/// <c>", "</c> and <c>": "</c> on one line, <c>","</c> and <c>": "</c> with <c>indent</c>; no HTML escaping.
/// Also converts caller-supplied CLR and <see cref="JsonElement"/> values into template values.
/// </summary>
internal static class Json
{
    public static string Serialize(object? value, int? indent, bool sortKeys)
    {
        var sb = new StringBuilder();
        Write(sb, value, indent, sortKeys, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? value, int? indent, bool sortKeys, int depth)
    {
        if (depth > Limits.MaxDataDepth)
        {
            throw Values.Error("Value is nested too deeply for tojson");
        }
        if (sb.Length > Limits.MaxStringLength)
        {
            throw Values.Error("tojson output is too large");
        }
        switch (value)
        {
            case null:
                sb.Append("null");
                break;
            case bool b:
                sb.Append(b ? "true" : "false");
                break;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : Values.FormatDouble(d));
                break;
            case string s:
                WriteString(sb, s);
                break;
            case IReadOnlyList<object?> list:
                if (list.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(indent is null ? ", " : ",");
                    }
                    NewLine(sb, indent, depth + 1);
                    Write(sb, list[i], indent, sortKeys, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append(']');
                break;
            case IReadOnlyDictionary<string, object?> dict:
                if (dict.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                sb.Append('{');
                var first = true;
                IEnumerable<KeyValuePair<string, object?>> pairs = sortKeys ? dict.OrderBy(p => p.Key, StringComparer.Ordinal) : dict;
                foreach (var (k, v) in pairs)
                {
                    if (!first)
                    {
                        sb.Append(indent is null ? ", " : ",");
                    }
                    first = false;
                    NewLine(sb, indent, depth + 1);
                    WriteString(sb, k);
                    sb.Append(": ");
                    Write(sb, v, indent, sortKeys, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append('}');
                break;
            case Undefined u:
                throw Values.Error($"{u.Description}: Object of type Undefined is not JSON serializable");
            default:
                throw Values.Error($"Object of type {Values.TypeName(value)} is not JSON serializable");
        }
    }

    private static void NewLine(StringBuilder sb, int? indent, int depth)
    {
        if (indent is { } n)
        {
            sb.Append('\n').Append(' ', n * depth);
        }
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20)
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>Converts a caller-supplied value (CLR primitives, collections, <see cref="JsonElement"/>) into a template value.</summary>
    public static object? FromClr(object? value, int depth = 0)
    {
        if (depth > Limits.MaxDataDepth)
        {
            throw new ChatTemplateException("A template variable is nested too deeply");
        }
        switch (value)
        {
            case null or string or bool or long or double:
                return value;
            case int or short or sbyte or byte or ushort or uint:
                return Convert.ToInt64(value, CultureInfo.InvariantCulture);
            case ulong u:
                return u <= long.MaxValue ? (long)u : (object)(double)u;
            case float or decimal:
                return Convert.ToDouble(value, CultureInfo.InvariantCulture);
            case char c:
                return c.ToString();
            case JsonElement element:
                return FromJsonElement(element, depth);
            case IReadOnlyDictionary<string, object?> dict:
                return ConvertDictionary(dict, depth);
            case IDictionary<string, object?> dict:
                return ConvertDictionary(dict, depth);
            case System.Collections.IDictionary dict:
                var converted = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (System.Collections.DictionaryEntry entry in dict)
                {
                    converted[Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? ""] = FromClr(entry.Value, depth + 1);
                }
                return converted;
            case System.Collections.IEnumerable items:
                var list = new List<object?>();
                foreach (var item in items)
                {
                    list.Add(FromClr(item, depth + 1));
                }
                return list;
            default:
                throw new ChatTemplateException($"Unsupported template variable type {value.GetType().Name}");
        }
    }

    private static Dictionary<string, object?> ConvertDictionary(IEnumerable<KeyValuePair<string, object?>> dict, int depth)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, v) in dict)
        {
            result[k] = FromClr(v, depth + 1);
        }
        return result;
    }

    public static object? FromJsonElement(JsonElement element, int depth = 0)
    {
        if (depth > Limits.MaxDataDepth)
        {
            throw new ChatTemplateException("A template variable is nested too deeply");
        }
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            case JsonValueKind.Number:
                return element.TryGetInt64(out var l) ? l : (object)element.GetDouble();
            case JsonValueKind.Array:
                var list = new List<object?>();
                foreach (var item in element.EnumerateArray())
                {
                    list.Add(FromJsonElement(item, depth + 1));
                }
                return list;
            case JsonValueKind.Object:
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var property in element.EnumerateObject())
                {
                    dict[property.Name] = FromJsonElement(property.Value, depth + 1);
                }
                return dict;
            default:
                return null;
        }
    }
}
