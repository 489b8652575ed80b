using System.Text;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Formats.Gguf;

/// <summary>
/// Writes GGUF v3 files. Metadata values use the same CLR types <see cref="GgufFile"/> returns
/// (byte, sbyte, ushort, short, uint, int, float, bool, string, ulong, long, double, typed arrays of
/// those, and object[] of arrays for nested arrays). Tensor shapes are row-major (outermost first);
/// the writer stores them innermost first as GGUF requires.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<KeyValuePair<string, object>> _metadata = [];
    private readonly List<(string Name, TensorType Type, long[] Shape, ReadOnlyMemory<byte> Data)> _tensors = [];

    public GgufWriter(int alignment = GgufFile.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two");
        }
        Alignment = alignment;
        if (alignment != GgufFile.DefaultAlignment)
        {
            _metadata.Add(new("general.alignment", (uint)alignment));
        }
    }

    public int Alignment { get; }

    public GgufWriter AddMetadata(string key, object value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        if (key == "general.alignment")
        {
            throw new ArgumentException("set the alignment through the constructor", nameof(key));
        }
        _ = TypeOf(value); // validate now rather than at write time
        if (_metadata.Exists(kv => kv.Key == key))
        {
            throw new ArgumentException($"metadata key '{key}' added twice", nameof(key));
        }
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>Adds a tensor; <paramref name="data"/> must hold exactly the bytes the type and shape need.</summary>
    public GgufWriter AddTensor(string name, TensorType type, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (!TensorTypes.IsKnown(type))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported tensor type");
        }
        if (shape.Count is 0 or > 4 || shape.Any(d => d <= 0))
        {
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] must have 1 to 4 positive dimensions", nameof(shape));
        }
        var elements = shape.Aggregate(1L, (a, d) => checked(a * d));
        if (shape[^1] % TensorTypes.BlockElements(type) != 0 || TensorTypes.ByteSize(type, elements) != data.Length)
        {
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes do not match {type} [{string.Join(", ", shape)}]", nameof(data));
        }
        if (_tensors.Exists(t => t.Name == name))
        {
            throw new ArgumentException($"tensor '{name}' added twice", nameof(name));
        }
        _tensors.Add((name, type, shape.ToArray(), data));
        return this;
    }

    public void Write(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(stream);
    }

    public void Write(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)TypeOf(value));
            WriteValue(w, value);
        }
        long offset = 0;
        var offsets = new long[_tensors.Count];
        for (var i = 0; i < _tensors.Count; i++)
        {
            var (name, type, shape, data) = _tensors[i];
            WriteString(w, name);
            w.Write((uint)shape.Length);
            for (var d = shape.Length - 1; d >= 0; d--)
            {
                w.Write((ulong)shape[d]);
            }
            w.Write((uint)type);
            offsets[i] = offset;
            w.Write((ulong)offset);
            offset = Align(offset + data.Length);
        }
        w.Flush();
        var headerEnd = stream.Position;
        Pad(w, Align(headerEnd) - headerEnd);
        for (var i = 0; i < _tensors.Count; i++)
        {
            var data = _tensors[i].Data;
            w.Write(data.Span);
            Pad(w, Align(data.Length) - data.Length);
        }
        w.Flush();
    }

    private long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w, long n)
    {
        for (var i = 0L; i < n; i++)
        {
            w.Write((byte)0);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static GgufValueType TypeOf(object value) => value switch
    {
        byte => GgufValueType.UInt8,
        sbyte => GgufValueType.Int8,
        ushort => GgufValueType.UInt16,
        short => GgufValueType.Int16,
        uint => GgufValueType.UInt32,
        int => GgufValueType.Int32,
        float => GgufValueType.Float32,
        bool => GgufValueType.Bool,
        string => GgufValueType.String,
        ulong => GgufValueType.UInt64,
        long => GgufValueType.Int64,
        double => GgufValueType.Float64,
        Array a => CheckArray(a),
        _ => throw new ArgumentException($"metadata value of type {value.GetType()} cannot be stored in GGUF", nameof(value)),
    };

    private static GgufValueType CheckArray(Array a)
    {
        if (ElementTypeOf(a) == GgufValueType.Array)
        {
            foreach (var e in a)
            {
                if (e is not Array inner)
                {
                    throw new ArgumentException("object[] metadata must contain only arrays", nameof(a));
                }
                CheckArray(inner);
            }
        }
        return GgufValueType.Array;
    }

    // Matched on the exact element type: the CLR lets an sbyte[] pass as byte[] (and int[] as uint[]) in type tests.
    private static GgufValueType ElementTypeOf(Array a) => a.GetType().GetElementType() switch
    {
        var t when t == typeof(byte) => GgufValueType.UInt8,
        var t when t == typeof(sbyte) => GgufValueType.Int8,
        var t when t == typeof(ushort) => GgufValueType.UInt16,
        var t when t == typeof(short) => GgufValueType.Int16,
        var t when t == typeof(uint) => GgufValueType.UInt32,
        var t when t == typeof(int) => GgufValueType.Int32,
        var t when t == typeof(float) => GgufValueType.Float32,
        var t when t == typeof(bool) => GgufValueType.Bool,
        var t when t == typeof(string) => GgufValueType.String,
        var t when t == typeof(ulong) => GgufValueType.UInt64,
        var t when t == typeof(long) => GgufValueType.Int64,
        var t when t == typeof(double) => GgufValueType.Float64,
        var t when t == typeof(object) => GgufValueType.Array,
        _ => throw new ArgumentException($"metadata array of type {a.GetType()} cannot be stored in GGUF", nameof(a)),
    };

    private static void WriteValue(BinaryWriter w, object value)
    {
        switch (value)
        {
            case byte v: w.Write(v); break;
            case sbyte v: w.Write(v); break;
            case ushort v: w.Write(v); break;
            case short v: w.Write(v); break;
            case uint v: w.Write(v); break;
            case int v: w.Write(v); break;
            case float v: w.Write(v); break;
            case bool v: w.Write((byte)(v ? 1 : 0)); break;
            case string v: WriteString(w, v); break;
            case ulong v: w.Write(v); break;
            case long v: w.Write(v); break;
            case double v: w.Write(v); break;
            case Array a:
                var elementType = ElementTypeOf(a);
                w.Write((uint)elementType);
                w.Write((ulong)a.Length);
                foreach (var e in a)
                {
                    WriteValue(w, e!); // an object[] element is itself an array: element type, count, items
                }
                break;
            default:
                throw new ArgumentException($"metadata value of type {value.GetType()} cannot be stored in GGUF", nameof(value));
        }
    }
}
