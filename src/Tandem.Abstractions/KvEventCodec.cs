using System.Buffers;
using System.Text.Json;

namespace Tandem.Abstractions;

/// <summary>A worker's load report, published on <c>tandem.{ns}.load.{instance_id}</c> about every 100 ms.</summary>
public sealed record WorkerLoad
{
    /// <summary>Sequences running (holding KV blocks).</summary>
    public int ActiveSequences { get; init; }

    /// <summary>Requests admitted but waiting.</summary>
    public int Waiting { get; init; }

    public int KvBlocksUsed { get; init; }
    public int KvBlocksTotal { get; init; }

    public double KvUsage => KvBlocksTotal == 0 ? 0 : (double)KvBlocksUsed / KvBlocksTotal;

    public static WorkerLoad From(EngineStats stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        return new() { ActiveSequences = stats.Running, Waiting = stats.Waiting, KvBlocksUsed = stats.KvBlocksUsed, KvBlocksTotal = stats.KvBlocksTotal };
    }
}

/// <summary>Subjects of the event plane (blueprint §5).</summary>
public static class EventSubjects
{
    public const string DefaultNamespace = "default";

    public static string KvEvents(string ns, string instanceId) => $"tandem.{ns}.kv_events.{instanceId}";

    public static string AllKvEvents(string ns) => $"tandem.{ns}.kv_events.>";

    public static string Load(string ns, string instanceId) => $"tandem.{ns}.load.{instanceId}";

    public static string AllLoad(string ns) => $"tandem.{ns}.load.>";

    /// <summary>Request-reply subject on which a worker answers with a <see cref="KvCacheSnapshot"/> of its cached blocks.</summary>
    public static string KvSnapshot(string ns, string instanceId) => $"tandem.{ns}.kv_snapshot.{instanceId}";

    /// <summary>The last token of a subject (the instance id of the per-worker subjects above).</summary>
    public static string LastToken(string subject)
    {
        ArgumentNullException.ThrowIfNull(subject);
        var dot = subject.LastIndexOf('.');
        return dot < 0 ? subject : subject[(dot + 1)..];
    }
}

/// <summary>Obtains a full dump of a worker's cached blocks, for a router that missed KV events.</summary>
public interface IKvSnapshotSource
{
    /// <summary>The worker's cached set; throws <see cref="TimeoutException"/> or <see cref="NoRespondersException"/> when it cannot be had.</summary>
    Task<KvCacheSnapshot> GetSnapshotAsync(string instanceId, CancellationToken cancellationToken = default);
}

/// <summary>
/// JSON payloads of the event plane. KV events: <c>{"events":[{"event_id":7,"type":"stored","parent_hash":123|null,
/// "blocks":[{"block_hash":..,"tokens_hash":..}]}, {"event_id":8,"type":"removed","block_hashes":[..]},
/// {"event_id":9,"type":"cleared"}]}</c> (a batch, in order). Snapshots: <c>{"last_event_id":9,"block_size":16,
/// "blocks":[{"block_hash":..,"parent_hash":..|null,"tokens_hash":..}]}</c>. Load: <c>{"active_sequences":..,
/// "waiting":..,"kv_blocks_used":..,"kv_blocks_total":..,"kv_usage":..}</c>. Hashes are unsigned 64-bit JSON numbers.
/// Decoding throws <see cref="FormatException"/> on anything malformed.
/// </summary>
public static class KvEventCodec
{
    public static byte[] EncodeEvents(IReadOnlyList<KvEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var buffer = new ArrayBufferWriter<byte>(64 + (events.Count * 64));
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("events");
            foreach (var e in events)
            {
                w.WriteStartObject();
                w.WriteNumber("event_id", e.EventId);
                switch (e)
                {
                    case KvBlocksStored s:
                        w.WriteString("type", "stored");
                        if (s.ParentHash is { } p)
                        {
                            w.WriteNumber("parent_hash", p);
                        }
                        else
                        {
                            w.WriteNull("parent_hash");
                        }
                        w.WriteStartArray("blocks");
                        foreach (var b in s.Blocks)
                        {
                            w.WriteStartObject();
                            w.WriteNumber("block_hash", b.BlockHash);
                            w.WriteNumber("tokens_hash", b.TokensHash);
                            w.WriteEndObject();
                        }
                        w.WriteEndArray();
                        break;
                    case KvBlocksRemoved r:
                        w.WriteString("type", "removed");
                        w.WriteStartArray("block_hashes");
                        foreach (var h in r.BlockHashes)
                        {
                            w.WriteNumberValue(h);
                        }
                        w.WriteEndArray();
                        break;
                    case KvCacheCleared:
                        w.WriteString("type", "cleared");
                        break;
                    default:
                        throw new ArgumentException($"unknown KV event type {e.GetType().Name}", nameof(events));
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static List<KvEvent> DecodeEvents(ReadOnlyMemory<byte> payload)
    {
        try
        {
            using var doc = JsonDocument.Parse(payload);
            var result = new List<KvEvent>();
            foreach (var e in Property(doc.RootElement, "events").EnumerateArray())
            {
                var id = Property(e, "event_id").GetInt64();
                var type = Property(e, "type").GetString();
                switch (type)
                {
                    case "stored":
                        var parent = e.TryGetProperty("parent_hash", out var p) && p.ValueKind != JsonValueKind.Null ? p.GetUInt64() : (ulong?)null;
                        var blocks = new List<KvStoredBlock>();
                        foreach (var b in Property(e, "blocks").EnumerateArray())
                        {
                            blocks.Add(new KvStoredBlock(Property(b, "block_hash").GetUInt64(), b.TryGetProperty("tokens_hash", out var t) ? t.GetUInt64() : 0));
                        }
                        result.Add(new KvBlocksStored(id, parent, blocks));
                        break;
                    case "removed":
                        var hashes = new List<ulong>();
                        foreach (var h in Property(e, "block_hashes").EnumerateArray())
                        {
                            hashes.Add(h.GetUInt64());
                        }
                        result.Add(new KvBlocksRemoved(id, hashes));
                        break;
                    case "cleared":
                        result.Add(new KvCacheCleared(id));
                        break;
                    default:
                        throw new FormatException($"unknown KV event type '{type}'");
                }
            }
            return result;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new FormatException("malformed KV events payload: " + e.Message, e);
        }
    }

    public static byte[] EncodeSnapshot(KvCacheSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var buffer = new ArrayBufferWriter<byte>(64 + (snapshot.Blocks.Count * 80));
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("last_event_id", snapshot.LastEventId);
            w.WriteNumber("block_size", snapshot.BlockSize);
            w.WriteStartArray("blocks");
            foreach (var b in snapshot.Blocks)
            {
                w.WriteStartObject();
                w.WriteNumber("block_hash", b.BlockHash);
                if (b.ParentHash is { } p)
                {
                    w.WriteNumber("parent_hash", p);
                }
                else
                {
                    w.WriteNull("parent_hash");
                }
                w.WriteNumber("tokens_hash", b.TokensHash);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static KvCacheSnapshot DecodeSnapshot(ReadOnlyMemory<byte> payload)
    {
        try
        {
            using var doc = JsonDocument.Parse(payload);
            var root = doc.RootElement;
            var blocks = new List<KvSnapshotBlock>();
            foreach (var b in Property(root, "blocks").EnumerateArray())
            {
                var parent = b.TryGetProperty("parent_hash", out var p) && p.ValueKind != JsonValueKind.Null ? p.GetUInt64() : (ulong?)null;
                blocks.Add(new KvSnapshotBlock(Property(b, "block_hash").GetUInt64(), parent, b.TryGetProperty("tokens_hash", out var t) ? t.GetUInt64() : 0));
            }
            return new KvCacheSnapshot(Property(root, "last_event_id").GetInt64(), Property(root, "block_size").GetInt32(), blocks);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new FormatException("malformed KV snapshot payload: " + e.Message, e);
        }
    }

    public static byte[] EncodeLoad(WorkerLoad load)
    {
        ArgumentNullException.ThrowIfNull(load);
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("active_sequences", load.ActiveSequences);
            w.WriteNumber("waiting", load.Waiting);
            w.WriteNumber("kv_blocks_used", load.KvBlocksUsed);
            w.WriteNumber("kv_blocks_total", load.KvBlocksTotal);
            w.WriteNumber("kv_usage", load.KvUsage);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static WorkerLoad DecodeLoad(ReadOnlyMemory<byte> payload)
    {
        try
        {
            using var doc = JsonDocument.Parse(payload);
            var root = doc.RootElement;
            return new WorkerLoad
            {
                ActiveSequences = Property(root, "active_sequences").GetInt32(),
                Waiting = Property(root, "waiting").GetInt32(),
                KvBlocksUsed = Property(root, "kv_blocks_used").GetInt32(),
                KvBlocksTotal = Property(root, "kv_blocks_total").GetInt32(),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new FormatException("malformed load payload: " + e.Message, e);
        }
    }

    private static JsonElement Property(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v : throw new KeyNotFoundException($"missing '{name}'");
}
