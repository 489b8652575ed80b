using System.Text;
using System.Text.Json;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Formats.Safetensors;

/// <summary>Writes a safetensors file: tensors sorted by name, header padded with spaces to a multiple of 8 bytes.</summary>
public sealed class SafetensorsWriter
{
    private readonly SortedDictionary<string, (TensorType Type, long[] Shape, ReadOnlyMemory<byte> Data)> _tensors = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    public SafetensorsWriter AddMetadata(string key, string value)
    {
        _metadata[key] = value;
        return this;
    }

    public SafetensorsWriter AddTensor(string name, TensorType type, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (type is not (TensorType.F32 or TensorType.F16 or TensorType.BF16))
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "safetensors holds F32, F16 or BF16 here");
        }
        var elements = shape.Aggregate(1L, (a, d) => d < 0 ? throw new ArgumentException("negative dimension", nameof(shape)) : checked(a * d));
        if (TensorTypes.ByteSize(type, elements) != data.Length)
        {
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes do not match {type} [{string.Join(", ", shape)}]", nameof(data));
        }
        if (!_tensors.TryAdd(name, (type, shape.ToArray(), data)))
        {
            throw new ArgumentException($"tensor '{name}' added twice", nameof(name));
        }
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
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in _metadata)
                {
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, (type, shape, data)) in _tensors)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", type.ToString());
                w.WriteStartArray("shape");
                foreach (var d in shape)
                {
                    w.WriteNumberValue(d);
                }
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += data.Length;
            }
            w.WriteEndObject();
        }
        var header = json.ToArray();
        var padded = (header.Length + 7) / 8 * 8;
        Span<byte> len = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        stream.Write(len);
        stream.Write(header);
        stream.Write(Encoding.ASCII.GetBytes(new string(' ', padded - header.Length)));
        foreach (var (_, (_, _, data)) in _tensors)
        {
            stream.Write(data.Span);
        }
        stream.Flush();
    }
}
