using System.Text.Json;

namespace Tandem.Frontend.OpenAi;

/// <summary>An error answered as OpenAI error JSON: <c>{"error":{"message","type","param","code"}}</c> with an HTTP status.</summary>
public sealed class OpenAiException(int status, string message, string type, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public static OpenAiException BadRequest(string message, string? param = null, string? code = null) =>
        new(400, message, "invalid_request_error", param, code);

    public static OpenAiException Unauthorized(string message) => new(401, message, "authentication_error", null, "invalid_api_key");

    public static OpenAiException ModelNotFound(string model, IEnumerable<string> available) =>
        new(404, $"The model '{model}' does not exist. Available: {string.Join(", ", available)}", "invalid_request_error", "model", "model_not_found");

    public static OpenAiException NotFound(string message) => new(404, message, "invalid_request_error", null, "not_found");

    public static OpenAiException TooLarge(string message) => new(413, message, "invalid_request_error", null, "request_too_large");

    public static OpenAiException Overloaded(string message) => new(429, message, "server_overloaded", null, "server_overloaded");

    public static OpenAiException Unavailable(string message) => new(503, message, "service_unavailable", null, "service_unavailable");

    public static OpenAiException Timeout(string message) => new(504, message, "timeout", null, "timeout");

    /// <summary>Writes the error object (without the HTTP envelope), e.g. for an SSE error event.</summary>
    public void WriteTo(Utf8JsonWriter w)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", Message);
        w.WriteString("type", Type);
        if (Param is null)
        {
            w.WriteNull("param");
        }
        else
        {
            w.WriteString("param", Param);
        }
        if (Code is null)
        {
            w.WriteNull("code");
        }
        else
        {
            w.WriteString("code", Code);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
