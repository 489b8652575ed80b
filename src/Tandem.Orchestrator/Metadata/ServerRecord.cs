using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tandem.Orchestrator.Metadata;

/// <summary>
/// A server as it lists itself in the metadata server, in TensorRT-LLM's layout: key <c>trtllm/{id}</c>, value
/// <c>{"model", "version", "timestamp", "server_role", "url"}</c>.
/// </summary>
public sealed record ServerRecord(string Key, Uri Url, string Role, string? Model)
{
    public const string Prefix = "trtllm/";

    public bool IsContext => Role.Equals("context", StringComparison.OrdinalIgnoreCase);

    public bool IsGeneration => Role.Equals("generation", StringComparison.OrdinalIgnoreCase);

    public static string KeyFor(string id) => Prefix + id;

    public static byte[] Encode(string url, string role, string? model, string version) =>
        JsonSerializer.SerializeToUtf8Bytes(new JsonObject
        {
            ["model"] = model,
            ["version"] = version,
            ["timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0,
            ["server_role"] = role.ToUpperInvariant(),
            ["url"] = url,
        });

    /// <summary>Reads a value; null when it is not a server record (other keys may share the prefix).</summary>
    public static ServerRecord? TryDecode(string key, ReadOnlySpan<byte> value)
    {
        try
        {
            if (JsonNode.Parse(value) is not JsonObject o || o["url"] is not JsonValue url || !url.TryGetValue<string>(out var u))
            {
                return null;
            }
            var role = o["server_role"] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonValue v when v.TryGetValue<int>(out var i) => i switch { 0 => "context", 1 => "generation", _ => "" },
                _ => "",
            };
            role = role.ToUpperInvariant() switch
            {
                "CONTEXT" or "SERVERROLE.CONTEXT" => "context",
                "GENERATION" or "SERVERROLE.GENERATION" => "generation",
                _ => "",
            };
            if (role.Length == 0)
            {
                return null;
            }
            var model = o["model"] is JsonValue m && m.TryGetValue<string>(out var ms) ? ms : null;
            return new ServerRecord(key, Config.ConfigParser.NormalizeUrl(u), role, model);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }
}

/// <summary>Where servers list themselves (etcd in production, a dictionary in tests).</summary>
public interface IServerRegistry
{
    /// <summary>Every key under <see cref="ServerRecord.Prefix"/> with its value.</summary>
    Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>Deletes a dead server's key.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken = default);
}
