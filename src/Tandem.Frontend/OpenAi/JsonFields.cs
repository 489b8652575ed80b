using System.Text.Json;

namespace Tandem.Frontend.OpenAi;

/// <summary>Typed reads of a request object's fields with OpenAI-style 400 errors naming the field; null counts as absent.</summary>
internal readonly struct JsonFields(JsonElement obj)
{
    public JsonElement Object { get; } = obj;

    public bool Has(string name) => Object.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string name) => Object.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string? String(string name)
    {
        if (Get(name) is not { } v)
        {
            return null;
        }
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw TypeError(name, "a string", v);
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v)
        {
            return null;
        }
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw TypeError(name, "a boolean", v),
        };
    }

    public long? Integer(string name, long min, long max)
    {
        if (Get(name) is not { } v)
        {
            return null;
        }
        if (v.ValueKind != JsonValueKind.Number)
        {
            throw TypeError(name, "an integer", v);
        }
        // 5.0 is accepted as 5 (some clients send floats); 5.5 is not an integer.
        if (!v.TryGetInt64(out var n))
        {
            if (v.TryGetDouble(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9e15)
            {
                n = (long)d;
            }
            else
            {
                throw OpenAiException.BadRequest($"'{name}' must be an integer in [{min}, {max}], got {v.GetRawText()}", name);
            }
        }
        if (n < min || n > max)
        {
            throw OpenAiException.BadRequest($"'{name}' must be in [{min}, {max}], got {n}", name);
        }
        return n;
    }

    public double? Number(string name, double min, double max)
    {
        if (Get(name) is not { } v)
        {
            return null;
        }
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d))
        {
            throw TypeError(name, "a number", v);
        }
        if (!(d >= min && d <= max))
        {
            throw OpenAiException.BadRequest($"'{name}' must be in [{min}, {max}], got {v.GetRawText()}", name);
        }
        return d;
    }

    /// <summary>A string or an array of strings (e.g. <c>stop</c>).</summary>
    public IReadOnlyList<string> Strings(string name, int maxCount)
    {
        if (Get(name) is not { } v)
        {
            return [];
        }
        if (v.ValueKind == JsonValueKind.String)
        {
            return [v.GetString()!];
        }
        if (v.ValueKind != JsonValueKind.Array)
        {
            throw TypeError(name, "a string or an array of strings", v);
        }
        if (v.GetArrayLength() > maxCount)
        {
            throw OpenAiException.BadRequest($"'{name}' may hold at most {maxCount} entries, got {v.GetArrayLength()}", name);
        }
        var list = new List<string>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw TypeError(name, "a string or an array of strings", v);
            }
            list.Add(item.GetString()!);
        }
        return list;
    }

    /// <summary>An array of integers in [0, max) (token ids).</summary>
    public IReadOnlyList<int> Ints(string name, int exclusiveMax)
    {
        if (Get(name) is not { } v)
        {
            return [];
        }
        if (v.ValueKind != JsonValueKind.Array)
        {
            throw TypeError(name, "an array of integers", v);
        }
        return ReadTokenIds(v, name, exclusiveMax);
    }

    public static int[] ReadTokenIds(JsonElement array, string name, int exclusiveMax)
    {
        var ids = new int[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var id))
            {
                throw OpenAiException.BadRequest($"'{name}' must contain only integer token ids, got {Truncate(item.GetRawText())}", name);
            }
            if (id < 0 || id >= exclusiveMax)
            {
                throw OpenAiException.BadRequest($"'{name}' contains token id {id}, outside the vocabulary [0, {exclusiveMax})", name);
            }
            ids[i++] = id;
        }
        return ids;
    }

    public static OpenAiException TypeError(string name, string expected, JsonElement got) =>
        OpenAiException.BadRequest($"'{name}' must be {expected}, got {Describe(got)}", name);

    private static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string {Truncate(v.GetRawText())}",
        JsonValueKind.Number => $"the number {Truncate(v.GetRawText())}",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {v.GetRawText()}",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => v.ValueKind.ToString().ToLowerInvariant(),
    };

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..37] + "...";
}
