using Microsoft.AspNetCore.Http;

namespace Tandem.Frontend;

/// <summary>
/// Request ids: the client's <c>X-Request-Id</c> when it is short and printable (so logs join across systems), else a
/// new random one. Echoed in the response header and used in logs and response ids.
/// </summary>
internal static class RequestIds
{
    public const string Header = "X-Request-Id";
    private const string ItemKey = "tandem.request_id";

    public static string Get(HttpContext http)
    {
        if (http.Items.TryGetValue(ItemKey, out var existing) && existing is string id)
        {
            return id;
        }
        var given = http.Request.Headers[Header].ToString();
        id = IsUsable(given) ? given : Guid.NewGuid().ToString("N")[..24];
        http.Items[ItemKey] = id;
        return id;
    }

    private static bool IsUsable(string s) => s.Length is > 0 and <= 128 && s.All(c => c is > ' ' and < '\x7f');
}
