using System.Text.Json;

namespace Tandem.Nats;

/// <summary>The fields of the server's INFO that the client uses.</summary>
public sealed record NatsServerInfo(
    string ServerId,
    string Version,
    bool Headers,
    long MaxPayload,
    bool TlsRequired,
    bool TlsAvailable,
    bool AuthRequired,
    IReadOnlyList<string> ConnectUrls,
    bool LameDuckMode)
{
    public static NatsServerInfo Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new NatsProtocolException("INFO is not a JSON object");
            }
            var urls = new List<string>();
            if (root.TryGetProperty("connect_urls", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var u in list.EnumerateArray())
                {
                    if (u.ValueKind == JsonValueKind.String)
                    {
                        urls.Add(u.GetString()!);
                    }
                }
            }
            return new NatsServerInfo(
                String(root, "server_id"),
                String(root, "version"),
                Bool(root, "headers"),
                root.TryGetProperty("max_payload", out var max) && max.TryGetInt64(out var m) ? m : 1024 * 1024,
                Bool(root, "tls_required"),
                Bool(root, "tls_available"),
                Bool(root, "auth_required"),
                urls,
                Bool(root, "ldm"));
        }
        catch (JsonException ex)
        {
            throw new NatsProtocolException($"INFO is not valid JSON: {ex.Message}");
        }
    }

    private static string String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    private static bool Bool(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;
}
