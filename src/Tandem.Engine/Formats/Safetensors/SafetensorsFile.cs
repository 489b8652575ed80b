using System.Buffers.Binary;
using System.Text.Json;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Formats.Safetensors;

/// <summary>
/// A safetensors file, memory-mapped read-only: an 8-byte little-endian header length, a JSON header
/// describing each tensor (dtype, shape, data_offsets relative to the data section), then the data.
/// Tensor data is never copied. Any defect is a <see cref="ModelFormatException"/> naming the file.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest JSON header accepted.</summary>
    public const long MaxHeaderLength = 100L << 20;

    private const int MaxRank = 8;

    private readonly MappedFile _map;
    private readonly List<WeightTensor> _tensors;
    private readonly Dictionary<string, string> _metadata;

    private SafetensorsFile(MappedFile map, List<WeightTensor> tensors, Dictionary<string, string> metadata, long dataOffset)
    {
        _map = map;
        _tensors = tensors;
        _metadata = metadata;
        DataOffset = dataOffset;
    }

    public string Path => _map.Path;

    /// <summary>Tensors sorted by name, under their names in the file.</summary>
    public IReadOnlyList<WeightTensor> Tensors => _tensors;

    /// <summary>The string entries of <c>__metadata__</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    public long DataOffset { get; }

    public WeightTensor? TryGetTensor(string name) => _tensors.Find(t => t.Name == name);

    public static SafetensorsFile Open(string path) => MappedFile.OpenAndParse(path, "safetensors", Parse);

    public void Dispose() => _map.Dispose();

    private static SafetensorsFile Parse(MappedFile map)
    {
        var path = map.Path;
        if (map.Length < 8)
        {
            throw new ModelFormatException(path, $"truncated: safetensors header length needs 8 bytes but the file has {map.Length}");
        }
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(map.Pointer, 8));
        if (headerLength > (ulong)MaxHeaderLength)
        {
            throw new ModelFormatException(path, $"safetensors header length {headerLength} exceeds the limit of {MaxHeaderLength} bytes");
        }
        if ((long)headerLength > map.Length - 8)
        {
            throw new ModelFormatException(path, $"truncated: safetensors header needs {headerLength} bytes but only {map.Length - 8} remain");
        }
        var dataOffset = 8 + (long)headerLength;
        var dataLength = map.Length - dataOffset;
        var header = new ReadOnlyMemory<byte>(new ReadOnlySpan<byte>(map.Pointer + 8, (int)headerLength).ToArray());
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(path, $"safetensors header is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(path, "safetensors header is not a JSON object");
            }
            var tensors = new List<WeightTensor>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                    {
                        foreach (var m in prop.Value.EnumerateObject())
                        {
                            if (m.Value.ValueKind == JsonValueKind.String)
                            {
                                metadata[m.Name] = m.Value.GetString()!;
                            }
                        }
                    }
                    continue;
                }
                var name = prop.Name;
                if (!names.Add(name))
                {
                    throw new ModelFormatException(path, $"tensor '{name}' appears twice");
                }
                tensors.Add(ParseTensor(map, name, prop.Value, dataOffset, dataLength));
            }
            tensors.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            return new SafetensorsFile(map, tensors, metadata, dataOffset);
        }
    }

    private static WeightTensor ParseTensor(MappedFile map, string name, JsonElement e, long dataOffset, long dataLength)
    {
        var path = map.Path;
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var offsEl) || offsEl.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(path, $"tensor '{name}' needs dtype, shape and data_offsets");
        }
        var dtype = dtypeEl.GetString()!;
        TensorType type = dtype switch
        {
            "F32" => TensorType.F32,
            "F16" => TensorType.F16,
            "BF16" => TensorType.BF16,
            _ => throw new ModelFormatException(path, $"tensor '{name}' has unsupported dtype '{dtype}'; supported: F32, F16, BF16"),
        };
        var rank = shapeEl.GetArrayLength();
        if (rank > MaxRank)
        {
            throw new ModelFormatException(path, $"tensor '{name}' has {rank} dimensions (at most {MaxRank})");
        }
        var shape = new long[rank];
        long elements = 1;
        var i = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0 || dim > int.MaxValue)
            {
                throw new ModelFormatException(path, $"tensor '{name}' has invalid dimension {d}");
            }
            shape[i++] = dim;
            if (dim != 0 && elements > long.MaxValue / dim)
            {
                throw new ModelFormatException(path, $"tensor '{name}' element count overflows");
            }
            elements *= dim;
        }
        var cols = rank == 0 ? 1 : shape[^1];
        if (cols != 0 && elements / cols > int.MaxValue)
        {
            throw new ModelFormatException(path, $"tensor '{name}' has too many rows");
        }
        if (elements > long.MaxValue / 4)
        {
            throw new ModelFormatException(path, $"tensor '{name}' byte size overflows");
        }
        var bytes = TensorTypes.ByteSize(type, elements);
        if (offsEl.GetArrayLength() != 2
            || !offsEl[0].TryGetInt64(out var begin) || !offsEl[1].TryGetInt64(out var end)
            || begin < 0 || end < begin)
        {
            throw new ModelFormatException(path, $"tensor '{name}' has invalid data_offsets {offsEl}");
        }
        if (end > dataLength)
        {
            throw new ModelFormatException(path, $"truncated: tensor '{name}' data [{begin}, {end}) lies outside the {dataLength}-byte data section");
        }
        if (end - begin != bytes)
        {
            throw new ModelFormatException(path, $"tensor '{name}' has {end - begin} data bytes but {dtype} [{string.Join(", ", shape)}] needs {bytes}");
        }
        return new WeightTensor(name, type, shape, map.Pointer + dataOffset + begin, bytes);
    }
}
