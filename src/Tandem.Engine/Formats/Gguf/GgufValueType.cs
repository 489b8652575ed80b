namespace Tandem.Engine.Formats.Gguf;

/// <summary>Metadata value type ids of the GGUF format.</summary>
internal enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>Names of GGML tensor type ids, for error messages.</summary>
public static class GgmlTypeNames
{
    private static readonly Dictionary<uint, string> Names = new()
    {
        [0] = "F32",
        [1] = "F16",
        [2] = "Q4_0",
        [3] = "Q4_1",
        [6] = "Q5_0",
        [7] = "Q5_1",
        [8] = "Q8_0",
        [9] = "Q8_1",
        [10] = "Q2_K",
        [11] = "Q3_K",
        [12] = "Q4_K",
        [13] = "Q5_K",
        [14] = "Q6_K",
        [15] = "Q8_K",
        [16] = "IQ2_XXS",
        [17] = "IQ2_XS",
        [18] = "IQ3_XXS",
        [19] = "IQ1_S",
        [20] = "IQ4_NL",
        [21] = "IQ3_S",
        [22] = "IQ2_S",
        [23] = "IQ4_XS",
        [24] = "I8",
        [25] = "I16",
        [26] = "I32",
        [27] = "I64",
        [28] = "F64",
        [29] = "IQ1_M",
        [30] = "BF16",
        [34] = "TQ1_0",
        [35] = "TQ2_0",
        [39] = "MXFP4",
    };

    /// <summary>"Q4_K (12)" for a known id, "unknown type 99" otherwise.</summary>
    public static string Describe(uint id) => Names.TryGetValue(id, out var n) ? $"{n} ({id})" : $"unknown type {id}";
}
