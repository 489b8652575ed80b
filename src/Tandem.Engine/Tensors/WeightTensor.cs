namespace Tandem.Engine.Tensors;

/// <summary>
/// A read-only tensor whose bytes live in memory owned elsewhere (normally a memory-mapped model file).
/// Shape is row-major, outermost dimension first (PyTorch order): a matrix is [rows, cols] and row r
/// occupies bytes [r × RowBytes, (r + 1) × RowBytes). GGUF stores dimensions innermost first; loaders reverse them.
/// The owner of the memory (see <see cref="Models.ModelWeights"/>) must outlive every use of <see cref="Data"/>.
/// </summary>
public sealed unsafe class WeightTensor
{
    public WeightTensor(string name, TensorType type, long[] shape, byte* data, long byteLength)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Name = name;
        Type = type;
        Shape = shape;
        Data = data;
        ByteLength = byteLength;
        long count = 1;
        foreach (var d in shape)
        {
            count = checked(count * d);
        }
        ElementCount = count;
        Cols = shape.Length == 0 ? 1 : checked((int)shape[^1]);
        Rows = Cols == 0 ? 0 : checked((int)(count / Cols));
        RowBytes = TensorTypes.ByteSize(type, Cols);
        if (RowBytes < 0)
        {
            throw new ArgumentException($"tensor '{name}': row length {Cols} is not a multiple of the {type} block size", nameof(shape));
        }
        if (checked(RowBytes * Rows) != byteLength)
        {
            throw new ArgumentException($"tensor '{name}': {byteLength} bytes do not match shape [{string.Join(", ", shape)}] of {type}", nameof(byteLength));
        }
    }

    public string Name { get; }
    public TensorType Type { get; }
    public IReadOnlyList<long> Shape { get; }
    public byte* Data { get; }
    public long ByteLength { get; }
    public long ElementCount { get; }

    /// <summary>Product of all dimensions but the last.</summary>
    public int Rows { get; }

    /// <summary>The innermost (last) dimension.</summary>
    public int Cols { get; }

    public long RowBytes { get; }

    public ReadOnlySpan<byte> Row(int row)
    {
        if ((uint)row >= (uint)Rows)
        {
            throw new ArgumentOutOfRangeException(nameof(row), row, $"tensor '{Name}' has {Rows} rows");
        }
        return new ReadOnlySpan<byte>(Data + (row * RowBytes), checked((int)RowBytes));
    }

    public override string ToString() => $"{Name} {Type} [{string.Join(", ", Shape)}]";
}
