using Tandem.Engine.Models;

namespace Tandem.Engine.Tokenizers;

/// <summary>Typed, validated access to tokenizer.ggml.* metadata; every problem becomes a <see cref="ModelFormatException"/>.</summary>
internal sealed class GgufTokenizerMetadata
{
    private readonly IReadOnlyDictionary<string, object> _metadata;

    public GgufTokenizerMetadata(IReadOnlyDictionary<string, object> metadata, string path)
    {
        _metadata = metadata;
        Path = path;
    }

    public string Path { get; }

    public ModelFormatException Error(string problem) => new(Path, problem);

    public string? String(string key) => _metadata.GetValueOrDefault(key) switch
    {
        null => null,
        string s => s,
        var other => throw Error($"{key} must be a string, found {Describe(other)}"),
    };

    public bool? Bool(string key) => _metadata.GetValueOrDefault(key) switch
    {
        null => null,
        bool b => b,
        var other => throw Error($"{key} must be a bool, found {Describe(other)}"),
    };

    public string[]? StringArray(string key, int? expectedLength = null)
    {
        var value = _metadata.GetValueOrDefault(key);
        if (value is null)
        {
            return null;
        }
        if (value is not string[] array)
        {
            throw Error($"{key} must be an array of strings, found {Describe(value)}");
        }
        if (Array.IndexOf(array, null) >= 0)
        {
            throw Error($"{key} contains a null entry");
        }
        CheckLength(key, array.Length, expectedLength);
        return array;
    }

    public float[]? FloatArray(string key, int expectedLength)
    {
        var value = _metadata.GetValueOrDefault(key);
        float[] result = value switch
        {
            null => null!,
            float[] f => f,
            double[] d => Array.ConvertAll(d, x => (float)x),
            _ => throw Error($"{key} must be an array of float32, found {Describe(value)}"),
        };
        if (result is not null)
        {
            CheckLength(key, result.Length, expectedLength);
        }
        return result;
    }

    public long[]? IntegerArray(string key, int expectedLength)
    {
        var value = _metadata.GetValueOrDefault(key);
        long[] result = value switch
        {
            null => null!,
            int[] a => Array.ConvertAll(a, x => (long)x),
            uint[] a => Array.ConvertAll(a, x => (long)x),
            long[] a => a,
            ulong[] a => Array.ConvertAll(a, x => x > long.MaxValue ? -1 : (long)x),
            short[] a => Array.ConvertAll(a, x => (long)x),
            ushort[] a => Array.ConvertAll(a, x => (long)x),
            sbyte[] a => Array.ConvertAll(a, x => (long)x),
            byte[] a => Array.ConvertAll(a, x => (long)x),
            _ => throw Error($"{key} must be an array of integers, found {Describe(value)}"),
        };
        if (result is not null)
        {
            CheckLength(key, result.Length, expectedLength);
        }
        return result;
    }

    /// <summary>A token id (uint or int, any width); -1 for a negative int or an all-ones uint ("none", as llama.cpp writes it); null when absent.</summary>
    public int? TokenId(string key, int vocabSize)
    {
        var value = _metadata.GetValueOrDefault(key);
        long? id = value switch
        {
            null => null,
            uint.MaxValue or ulong.MaxValue => -1,
            uint u => u,
            int i => i,
            ulong u => u > int.MaxValue ? long.MaxValue : (long)u,
            long l => l,
            ushort u => u,
            short s => s,
            byte b => b,
            sbyte s => s,
            _ => throw Error($"{key} must be an integer token id, found {Describe(value)}"),
        };
        if (id is null)
        {
            return null;
        }
        if (id < 0)
        {
            return -1;
        }
        if (id >= vocabSize)
        {
            throw Error($"{key} = {id} is outside the vocabulary of {vocabSize} tokens");
        }
        return (int)id;
    }

    private void CheckLength(string key, int length, int? expected)
    {
        if (expected is int e && length != e)
        {
            throw Error($"{key} has {length} entries but tokenizer.ggml.tokens has {e}");
        }
    }

    private static string Describe(object value) => value switch
    {
        Array a => $"{a.GetType().GetElementType()?.Name ?? "?"}[{a.Length}]",
        _ => value.GetType().Name,
    };
}
