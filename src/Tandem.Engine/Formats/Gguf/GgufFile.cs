using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Tandem.Engine.Models;
using Tandem.Engine.Tensors;

namespace Tandem.Engine.Formats.Gguf;

/// <summary>
/// A GGUF (v2 or v3) model file, memory-mapped read-only. Tensor data is never copied: each
/// <see cref="WeightTensor"/> points into the mapping, which lives until this object is disposed.
/// Every count, length and offset in the file is treated as untrusted; any defect is reported as a
/// <see cref="ModelFormatException"/> naming the file.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;

    /// <summary>Longest metadata string accepted (bytes).</summary>
    public const long MaxStringLength = 64L << 20;

    /// <summary>Most elements accepted in one metadata array.</summary>
    public const long MaxArrayLength = 1L << 26;

    private const int MaxTensorNameLength = 4096;
    private const int MaxArrayNesting = 8;

    private readonly MappedFile _map;
    private readonly Dictionary<string, object> _metadata;
    private readonly List<WeightTensor> _tensors;
    private readonly Dictionary<string, WeightTensor> _byName;

    private GgufFile(MappedFile map, int version, Dictionary<string, object> metadata, List<WeightTensor> tensors, long dataOffset, int alignment)
    {
        _map = map;
        Version = version;
        _metadata = metadata;
        _tensors = tensors;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        DataOffset = dataOffset;
        Alignment = alignment;
    }

    public string Path => _map.Path;
    public int Version { get; }
    public IReadOnlyDictionary<string, object> Metadata => _metadata;

    /// <summary>Tensors in file order; shapes are row-major (outermost first), i.e. GGUF's ne reversed.</summary>
    public IReadOnlyList<WeightTensor> Tensors => _tensors;

    /// <summary>File offset of the tensor data section.</summary>
    public long DataOffset { get; }

    public int Alignment { get; }
    public long FileLength => _map.Length;

    /// <summary><c>general.architecture</c>, or null.</summary>
    public string? Architecture => GetString("general.architecture");

    public string? GetString(string key) => _metadata.GetValueOrDefault(key) as string;

    /// <summary>Reads integer metadata of any integer type (a uint64 above <see cref="long.MaxValue"/> fails).</summary>
    public bool TryGetInt(string key, out long value) => TryGetInt(_metadata, key, out value);

    /// <summary>Reads float metadata of any float (or integer) type.</summary>
    public bool TryGetFloat(string key, out double value) => TryGetFloat(_metadata, key, out value);

    public static bool TryGetInt(IReadOnlyDictionary<string, object> metadata, string key, out long value)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        value = 0;
        if (!metadata.TryGetValue(key, out var v))
        {
            return false;
        }
        switch (v)
        {
            case byte b: value = b; return true;
            case sbyte sb: value = sb; return true;
            case ushort us: value = us; return true;
            case short s: value = s; return true;
            case uint ui: value = ui; return true;
            case int i: value = i; return true;
            case long l: value = l; return true;
            case ulong ul when ul <= long.MaxValue: value = (long)ul; return true;
            default: return false;
        }
    }

    public static bool TryGetFloat(IReadOnlyDictionary<string, object> metadata, string key, out double value)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        value = 0;
        if (!metadata.TryGetValue(key, out var v))
        {
            return false;
        }
        switch (v)
        {
            case float f: value = f; return true;
            case double d: value = d; return true;
            default:
                if (TryGetInt(metadata, key, out var l))
                {
                    value = l;
                    return true;
                }
                return false;
        }
    }

    public WeightTensor? TryGetTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Maps and parses <paramref name="path"/>.</summary>
    public static GgufFile Open(string path) => MappedFile.OpenAndParse(path, "GGUF", Parse);

    public void Dispose() => _map.Dispose();

    private static GgufFile Parse(MappedFile map)
    {
        var path = map.Path;
        var r = new Reader(map.Pointer, map.Length, path) { Context = "header" };
        if (map.Length < 4 || r.U32() != Magic)
        {
            throw new ModelFormatException(path, "not a GGUF file (bad magic)");
        }
        var version = r.U32();
        if (version == 1)
        {
            throw new ModelFormatException(path, "GGUF version 1 is not supported (only versions 2 and 3)");
        }
        if (version is not (2 or 3))
        {
            throw new ModelFormatException(path, $"unsupported GGUF version {version} (only versions 2 and 3)");
        }
        var tensorCount = r.U64();
        var kvCount = r.U64();
        // Smallest possible entries: a kv needs key length (8) + type (4) + value (1);
        // a tensor info needs name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
        if (kvCount > (ulong)(r.Remaining / 13))
        {
            throw new ModelFormatException(path, $"metadata count {kvCount} cannot fit in the {r.Remaining} remaining bytes");
        }
        if (tensorCount > (ulong)(r.Remaining / 32))
        {
            throw new ModelFormatException(path, $"tensor count {tensorCount} cannot fit in the {r.Remaining} remaining bytes");
        }

        var metadata = new Dictionary<string, object>((int)kvCount, StringComparer.Ordinal);
        for (var i = 0L; i < (long)kvCount; i++)
        {
            r.Context = $"metadata key {i}";
            var key = r.String(MaxStringLength);
            r.Context = $"metadata '{key}'";
            var type = r.U32();
            var value = r.Value(type, 0);
            if (!metadata.TryAdd(key, value))
            {
                throw new ModelFormatException(path, $"metadata key '{key}' appears twice");
            }
        }

        var alignment = DefaultAlignment;
        if (metadata.ContainsKey("general.alignment"))
        {
            if (!TryGetInt(metadata, "general.alignment", out var a) || a <= 0 || a > (1 << 24) || (a & (a - 1)) != 0)
            {
                throw new ModelFormatException(path, $"general.alignment {metadata["general.alignment"]} is not a power of two");
            }
            alignment = (int)a;
        }

        var infos = new List<(string Name, long[] Shape, TensorType Type, ulong Offset, long Bytes)>((int)tensorCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0L; i < (long)tensorCount; i++)
        {
            r.Context = $"tensor info {i}";
            var name = r.String(MaxTensorNameLength);
            r.Context = $"tensor '{name}'";
            if (!names.Add(name))
            {
                throw new ModelFormatException(path, $"tensor '{name}' appears twice");
            }
            var nDims = r.U32();
            if (nDims is 0 or > 4)
            {
                throw new ModelFormatException(path, $"tensor '{name}' has {nDims} dimensions (1 to 4 supported)");
            }
            var shape = new long[nDims];
            long elements = 1;
            for (var d = 0; d < nDims; d++)
            {
                var dim = r.U64();
                if (dim == 0 || dim > int.MaxValue)
                {
                    throw new ModelFormatException(path, $"tensor '{name}' has invalid dimension {d} of size {dim}");
                }
                shape[nDims - 1 - d] = (long)dim;
                if (elements > long.MaxValue / (long)dim)
                {
                    throw new ModelFormatException(path, $"tensor '{name}' element count overflows");
                }
                elements *= (long)dim;
            }
            var typeId = r.U32();
            var type = (TensorType)typeId;
            if (typeId > int.MaxValue || !TensorTypes.IsKnown(type))
            {
                throw new ModelFormatException(path, $"tensor '{name}' has unsupported type {GgmlTypeNames.Describe(typeId)}; supported: F32, F16, BF16, Q8_0");
            }
            var offset = r.U64();
            var rows = elements / shape[^1];
            if (rows > int.MaxValue)
            {
                throw new ModelFormatException(path, $"tensor '{name}' has {rows} rows (at most {int.MaxValue})");
            }
            if (shape[^1] % TensorTypes.BlockElements(type) != 0)
            {
                throw new ModelFormatException(path, $"tensor '{name}': row length {shape[^1]} is not a multiple of the {type} block size {TensorTypes.BlockElements(type)}");
            }
            var bytes = elements / TensorTypes.BlockElements(type);
            if (bytes > long.MaxValue / TensorTypes.BlockBytes(type))
            {
                throw new ModelFormatException(path, $"tensor '{name}' byte size overflows");
            }
            bytes *= TensorTypes.BlockBytes(type);
            infos.Add((name, shape, type, offset, bytes));
        }

        var dataOffset = (r.Position + alignment - 1) / alignment * alignment;
        if (dataOffset > map.Length)
        {
            if (infos.Count > 0)
            {
                throw new ModelFormatException(path, $"truncated: tensor data section starts at offset {dataOffset} but the file has only {map.Length} bytes");
            }
            dataOffset = map.Length;
        }
        var dataLength = map.Length - dataOffset;
        var tensors = new List<WeightTensor>(infos.Count);
        foreach (var (name, shape, type, offset, bytes) in infos)
        {
            if (offset % (ulong)alignment != 0)
            {
                throw new ModelFormatException(path, $"tensor '{name}' data offset {offset} is not aligned to {alignment} bytes");
            }
            if (offset > (ulong)dataLength || bytes > dataLength - (long)offset)
            {
                throw new ModelFormatException(path, $"truncated: tensor '{name}' data [{offset}, {offset + (ulong)bytes}) lies outside the {dataLength}-byte data section");
            }
            tensors.Add(new WeightTensor(name, type, shape, map.Pointer + dataOffset + (long)offset, bytes));
        }
        return new GgufFile(map, (int)version, metadata, tensors, dataOffset, alignment);
    }

    /// <summary>Bounds-checked cursor over the mapped bytes.</summary>
    private sealed class Reader(byte* start, long length, string path)
    {
        private long _pos;

        public string Context { get; set; } = "";
        public long Position => _pos;
        public long Remaining => length - _pos;

        private byte* Take(long n)
        {
            if (n > Remaining)
            {
                throw new ModelFormatException(path, $"truncated: {Context} needs {n} bytes at offset {_pos} but only {Remaining} remain");
            }
            var p = start + _pos;
            _pos += n;
            return p;
        }

        public byte U8() => *Take(1);
        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(Take(2), 2));
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(Take(4), 4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(Take(8), 8));

        public string String(long max)
        {
            var len = U64();
            if (len > (ulong)max)
            {
                throw new ModelFormatException(path, $"{Context}: string length {len} exceeds the limit of {max} bytes");
            }
            if ((long)len > Remaining)
            {
                throw new ModelFormatException(path, $"truncated: {Context} needs a {len}-byte string at offset {_pos} but only {Remaining} bytes remain");
            }
            var p = Take((long)len);
            return Encoding.UTF8.GetString(p, (int)len);
        }

        public object Value(uint type, int depth) => (GgufValueType)type switch
        {
            GgufValueType.UInt8 => U8(),
            GgufValueType.Int8 => (sbyte)U8(),
            GgufValueType.UInt16 => U16(),
            GgufValueType.Int16 => (short)U16(),
            GgufValueType.UInt32 => U32(),
            GgufValueType.Int32 => (int)U32(),
            GgufValueType.Float32 => BitConverter.UInt32BitsToSingle(U32()),
            GgufValueType.Bool => U8() != 0,
            GgufValueType.String => String(MaxStringLength),
            GgufValueType.UInt64 => U64(),
            GgufValueType.Int64 => (long)U64(),
            GgufValueType.Float64 => BitConverter.UInt64BitsToDouble(U64()),
            GgufValueType.Array => Array(depth),
            _ => throw new ModelFormatException(path, $"{Context}: unknown metadata value type {type}"),
        };

        private object Array(int depth)
        {
            if (depth >= MaxArrayNesting)
            {
                throw new ModelFormatException(path, $"{Context}: arrays nested deeper than {MaxArrayNesting} levels");
            }
            var elemType = U32();
            var count = U64();
            if (count > MaxArrayLength)
            {
                throw new ModelFormatException(path, $"{Context}: array length {count} exceeds the limit of {MaxArrayLength}");
            }
            var n = (long)count;
            var size = (GgufValueType)elemType switch
            {
                GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
                GgufValueType.UInt16 or GgufValueType.Int16 => 2,
                GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
                GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
                GgufValueType.String => 8, // at least the length prefix
                GgufValueType.Array => 12, // at least type + count
                _ => throw new ModelFormatException(path, $"{Context}: unknown array element type {elemType}"),
            };
            if (n * size > Remaining)
            {
                throw new ModelFormatException(path, $"truncated: {Context} array of {n} elements needs at least {n * size} bytes at offset {_pos} but only {Remaining} remain");
            }
            switch ((GgufValueType)elemType)
            {
                case GgufValueType.UInt8: return Copy<byte>(n);
                case GgufValueType.Int8: return Copy<sbyte>(n);
                case GgufValueType.UInt16: return Copy<ushort>(n);
                case GgufValueType.Int16: return Copy<short>(n);
                case GgufValueType.UInt32: return Copy<uint>(n);
                case GgufValueType.Int32: return Copy<int>(n);
                case GgufValueType.Float32: return Copy<float>(n);
                case GgufValueType.UInt64: return Copy<ulong>(n);
                case GgufValueType.Int64: return Copy<long>(n);
                case GgufValueType.Float64: return Copy<double>(n);
                case GgufValueType.Bool:
                    {
                        var src = Take(n);
                        var result = new bool[n];
                        for (var i = 0; i < n; i++)
                        {
                            result[i] = src[i] != 0;
                        }
                        return result;
                    }
                case GgufValueType.String:
                    {
                        var result = new string[n];
                        for (var i = 0; i < n; i++)
                        {
                            result[i] = String(MaxStringLength);
                        }
                        return result;
                    }
                default:
                    {
                        var result = new object[n];
                        for (var i = 0; i < n; i++)
                        {
                            result[i] = Value((uint)GgufValueType.Array, depth + 1);
                        }
                        return result;
                    }
            }
        }

        private T[] Copy<T>(long n)
            where T : unmanaged
        {
            var bytes = n * sizeof(T);
            var src = Take(bytes);
            var result = new T[n];
            new ReadOnlySpan<byte>(src, (int)bytes).CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
            if (!BitConverter.IsLittleEndian)
            {
                throw new PlatformNotSupportedException("big-endian hosts are not supported");
            }
            return result;
        }
    }
}
