using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Tandem.Orchestrator.Proxy;

/// <summary>An error answered to the client in OpenAI's format.</summary>
internal sealed class ProxyException(int status, string message, string type = "invalid_request_error", string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;

    public static ProxyException BadRequest(string message, string? param = null) => new(400, message, "invalid_request_error", param);

    public static ProxyException Unavailable(string message) => new(503, message, "service_unavailable");
}

internal static class OpenAiErrors
{
    public static async Task WriteAsync(HttpContext http, int status, string message, string type, string? param = null)
    {
        if (http.Response.HasStarted)
        {
            // Mid-stream: an SSE event with the error, then the end of the stream.
            var payload = JsonSerializer.Serialize(new { error = new { message, type, param, code = status } });
            await http.Response.WriteAsync($"data: {payload}\n\ndata: [DONE]\n\n", http.RequestAborted).ConfigureAwait(false);
            return;
        }
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        if (status is 429 or 503)
        {
            http.Response.Headers.RetryAfter = 1.ToString(CultureInfo.InvariantCulture);
        }
        await http.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message, type, param, code = status } }), http.RequestAborted).ConfigureAwait(false);
    }
}
