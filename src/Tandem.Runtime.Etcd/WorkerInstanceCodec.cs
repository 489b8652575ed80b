using System.Text.Json;
using System.Text.Json.Serialization;
using Tandem.Abstractions;

namespace Tandem.Runtime.Etcd;

/// <summary>The JSON stored in etcd: snake_case fields, roles as lower-case strings.</summary>
internal static class WorkerInstanceCodec
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
    };

    public static byte[] EncodeInstance(WorkerInstance instance) => JsonSerializer.SerializeToUtf8Bytes(new InstanceRecord
    {
        InstanceId = instance.InstanceId,
        Component = instance.Component,
        Role = instance.Role,
        Model = instance.Model,
        ModelFingerprint = instance.ModelFingerprint,
        Endpoints = new Dictionary<string, string>(instance.Endpoints, StringComparer.Ordinal),
        KvBlockSize = instance.KvBlockSize,
        StartedAt = instance.StartedAt,
    }, Json);

    public static byte[] EncodeModel(WorkerInstance instance) => JsonSerializer.SerializeToUtf8Bytes(new ModelRecord
    {
        Model = instance.Model,
        InstanceId = instance.InstanceId,
        Component = instance.Component,
        Role = instance.Role,
        ModelFingerprint = instance.ModelFingerprint,
        KvBlockSize = instance.KvBlockSize,
    }, Json);

    /// <summary>Reads an instance record; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static WorkerInstance DecodeInstance(ReadOnlySpan<byte> utf8)
    {
        InstanceRecord? record;
        try
        {
            record = JsonSerializer.Deserialize<InstanceRecord>(utf8, Json);
        }
        catch (JsonException ex)
        {
            throw new FormatException($"invalid JSON: {ex.Message}", ex);
        }
        if (record is null)
        {
            throw new FormatException("the value is JSON null");
        }
        if (string.IsNullOrEmpty(record.InstanceId))
        {
            throw new FormatException("instance_id is missing");
        }
        if (string.IsNullOrEmpty(record.Model))
        {
            throw new FormatException("model is missing");
        }
        if (record.Role is not { } role || !Enum.IsDefined(role))
        {
            throw new FormatException("role is missing or unknown");
        }
        if (record.KvBlockSize < 0)
        {
            throw new FormatException("kv_block_size is negative");
        }
        return new WorkerInstance
        {
            InstanceId = record.InstanceId,
            Component = string.IsNullOrEmpty(record.Component) ? "worker" : record.Component,
            Role = role,
            Model = record.Model,
            ModelFingerprint = record.ModelFingerprint ?? "",
            Endpoints = record.Endpoints is null
                ? new Dictionary<string, string>(StringComparer.Ordinal)
                : new Dictionary<string, string>(record.Endpoints, StringComparer.Ordinal),
            KvBlockSize = record.KvBlockSize,
            StartedAt = record.StartedAt,
        };
    }

    internal sealed class InstanceRecord
    {
        public string? InstanceId { get; set; }
        public string? Component { get; set; }
        public WorkerRole? Role { get; set; }
        public string? Model { get; set; }
        public string? ModelFingerprint { get; set; }
        public Dictionary<string, string>? Endpoints { get; set; }
        public int KvBlockSize { get; set; }
        public DateTimeOffset StartedAt { get; set; }
    }

    internal sealed class ModelRecord
    {
        public string? Model { get; set; }
        public string? InstanceId { get; set; }
        public string? Component { get; set; }
        public WorkerRole? Role { get; set; }
        public string? ModelFingerprint { get; set; }
        public int KvBlockSize { get; set; }
    }
}
