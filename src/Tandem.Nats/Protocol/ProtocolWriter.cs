using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;

namespace Tandem.Nats.Protocol;

/// <summary>Formats client operations into a buffer writer; each method returns the number of bytes written.</summary>
internal static class ProtocolWriter
{
    private static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    public static int WritePing(IBufferWriter<byte> writer) => WriteRaw(writer, "PING\r\n"u8);

    public static int WritePong(IBufferWriter<byte> writer) => WriteRaw(writer, "PONG\r\n"u8);

    /// <summary>PUB subject [reply] size, or HPUB subject [reply] header-size total-size, then the bytes and CRLF.</summary>
    public static int WritePublish(IBufferWriter<byte> writer, string subject, string? replyTo, ReadOnlySpan<byte> headerBlock, ReadOnlySpan<byte> payload)
    {
        var written = headerBlock.IsEmpty ? WriteRaw(writer, "PUB "u8) : WriteRaw(writer, "HPUB "u8);
        written += WriteString(writer, subject);
        if (replyTo is not null)
        {
            written += WriteRaw(writer, " "u8) + WriteString(writer, replyTo);
        }
        if (!headerBlock.IsEmpty)
        {
            written += WriteRaw(writer, " "u8) + WriteNumber(writer, headerBlock.Length);
        }
        written += WriteRaw(writer, " "u8) + WriteNumber(writer, headerBlock.Length + payload.Length) + WriteRaw(writer, Crlf);
        written += WriteRaw(writer, headerBlock) + WriteRaw(writer, payload) + WriteRaw(writer, Crlf);
        return written;
    }

    public static int WriteSubscribe(IBufferWriter<byte> writer, string subject, string? queueGroup, long sid)
    {
        var written = WriteRaw(writer, "SUB "u8) + WriteString(writer, subject);
        if (queueGroup is not null)
        {
            written += WriteRaw(writer, " "u8) + WriteString(writer, queueGroup);
        }
        return written + WriteRaw(writer, " "u8) + WriteNumber(writer, sid) + WriteRaw(writer, Crlf);
    }

    public static int WriteUnsubscribe(IBufferWriter<byte> writer, long sid, long? maxMsgs)
    {
        var written = WriteRaw(writer, "UNSUB "u8) + WriteNumber(writer, sid);
        if (maxMsgs is { } max)
        {
            written += WriteRaw(writer, " "u8) + WriteNumber(writer, max);
        }
        return written + WriteRaw(writer, Crlf);
    }

    /// <summary>CONNECT {json}: verbose and pedantic off, headers and no_responders on, credentials when given.</summary>
    public static int WriteConnect(IBufferWriter<byte> writer, NatsOptions options, NatsServerAddress server, bool tls)
    {
        var json = new ArrayBufferWriter<byte>(256);
        using (var j = new Utf8JsonWriter(json))
        {
            j.WriteStartObject();
            j.WriteBoolean("verbose", false);
            j.WriteBoolean("pedantic", false);
            j.WriteBoolean("tls_required", tls);
            j.WriteString("name", options.Name);
            j.WriteString("lang", ".NET");
            j.WriteString("version", "1.0.0");
            j.WriteNumber("protocol", 1);
            j.WriteBoolean("echo", options.Echo);
            j.WriteBoolean("headers", true);
            j.WriteBoolean("no_responders", true);
            var user = server.User ?? options.User;
            var password = server.User is not null ? server.Password : options.Password;
            var token = server.Token ?? options.Token;
            if (user is not null)
            {
                j.WriteString("user", user);
                j.WriteString("pass", password);
            }
            else if (token is not null)
            {
                j.WriteString("auth_token", token);
            }
            j.WriteEndObject();
        }
        return WriteRaw(writer, "CONNECT "u8) + WriteRaw(writer, json.WrittenSpan) + WriteRaw(writer, Crlf);
    }

    private static int WriteRaw(IBufferWriter<byte> writer, ReadOnlySpan<byte> bytes)
    {
        writer.Write(bytes);
        return bytes.Length;
    }

    private static int WriteString(IBufferWriter<byte> writer, string text)
    {
        var length = Encoding.UTF8.GetByteCount(text);
        var span = writer.GetSpan(length);
        Encoding.UTF8.GetBytes(text, span);
        writer.Advance(length);
        return length;
    }

    private static int WriteNumber(IBufferWriter<byte> writer, long value)
    {
        var span = writer.GetSpan(20);
        Utf8Formatter.TryFormat(value, span, out var length);
        writer.Advance(length);
        return length;
    }
}
