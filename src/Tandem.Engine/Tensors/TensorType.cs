namespace Tandem.Engine.Tensors;

/// <summary>Element encodings of weight tensors. Values equal the GGML type ids used in GGUF files.</summary>
public enum TensorType
{
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
    BF16 = 30,
}

public static class TensorTypes
{
    /// <summary>Elements per quantization block (1 for plain float types).</summary>
    public static int BlockElements(TensorType type) => type switch
    {
        TensorType.Q8_0 => 32,
        _ => 1,
    };

    /// <summary>Bytes per quantization block (per element for plain float types).</summary>
    public static int BlockBytes(TensorType type) => type switch
    {
        TensorType.F32 => 4,
        TensorType.F16 => 2,
        TensorType.BF16 => 2,
        TensorType.Q8_0 => 34, // f16 scale + 32 × int8
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown tensor type"),
    };

    public static bool IsKnown(TensorType type) =>
        type is TensorType.F32 or TensorType.F16 or TensorType.BF16 or TensorType.Q8_0;

    /// <summary>Bytes needed for <paramref name="elements"/> elements, or -1 when the count is not a whole number of blocks.</summary>
    public static long ByteSize(TensorType type, long elements)
    {
        var per = BlockElements(type);
        if (elements < 0 || elements % per != 0)
        {
            return -1;
        }
        return checked(elements / per * BlockBytes(type));
    }
}
