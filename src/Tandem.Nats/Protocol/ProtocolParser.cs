using System.Buffers;
using System.Text;

namespace Tandem.Nats.Protocol;

/// <summary>
/// Parses server operations (INFO, MSG, HMSG, PING, PONG, +OK, -ERR) from a byte sequence that may end anywhere.
/// <see cref="TryRead"/> consumes one complete operation or nothing; input that can never become valid (unknown op,
/// bad or oversized sizes, a line or payload not ended by CRLF, a control line longer than the limit) throws
/// <see cref="NatsProtocolException"/> at once, so a broken stream never makes the reader wait forever.
/// </summary>
internal sealed class ProtocolParser(int maxPayloadBytes, int maxControlLineBytes = ProtocolParser.DefaultMaxControlLine)
{
    public const int DefaultMaxControlLine = 64 * 1024;
    private const int MaxArgs = 5;

    public int MaxPayloadBytes { get; } = maxPayloadBytes;

    public bool TryRead(ref ReadOnlySequence<byte> buffer, out ServerOp op)
    {
        op = default;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> lineWithCr, (byte)'\n', advancePastDelimiter: true))
        {
            if (buffer.Length > maxControlLineBytes)
            {
                throw new NatsProtocolException($"control line longer than {maxControlLineBytes} bytes without CRLF");
            }
            return false;
        }
        if (lineWithCr.Length > maxControlLineBytes)
        {
            throw new NatsProtocolException($"control line of {lineWithCr.Length} bytes exceeds the limit of {maxControlLineBytes}");
        }
        var lineLength = (int)lineWithCr.Length - 1;
        if (lineLength < 0 || lineWithCr.Slice(lineLength).FirstSpan[0] != (byte)'\r')
        {
            throw new NatsProtocolException("control line is not terminated by CRLF");
        }
        byte[]? rented = null;
        var line = lineLength <= 512 ? stackalloc byte[lineLength] : (rented = ArrayPool<byte>.Shared.Rent(lineLength)).AsSpan(0, lineLength);
        try
        {
            lineWithCr.Slice(0, lineLength).CopyTo(line);
            if (!TryParseLine(line, ref reader, out op))
            {
                return false;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    private bool TryParseLine(scoped ReadOnlySpan<byte> line, ref SequenceReader<byte> reader, out ServerOp op)
    {
        op = default;
        var nameEnd = line.IndexOfAny((byte)' ', (byte)'\t');
        var name = nameEnd < 0 ? line : line[..nameEnd];
        var rest = nameEnd < 0 ? [] : line[(nameEnd + 1)..];
        if (Is(name, "MSG"u8))
        {
            return TryParseMsg(rest, headers: false, ref reader, out op);
        }
        if (Is(name, "HMSG"u8))
        {
            return TryParseMsg(rest, headers: true, ref reader, out op);
        }
        if (Is(name, "PING"u8) && IsBlank(rest))
        {
            op = new ServerOp(ServerOpKind.Ping);
            return true;
        }
        if (Is(name, "PONG"u8) && IsBlank(rest))
        {
            op = new ServerOp(ServerOpKind.Pong);
            return true;
        }
        if (Is(name, "+OK"u8) && IsBlank(rest))
        {
            op = new ServerOp(ServerOpKind.Ok);
            return true;
        }
        if (Is(name, "-ERR"u8))
        {
            op = new ServerOp(ServerOpKind.Err, Encoding.UTF8.GetString(rest).Trim().Trim('\''));
            return true;
        }
        if (Is(name, "INFO"u8))
        {
            op = new ServerOp(ServerOpKind.Info, Encoding.UTF8.GetString(rest).Trim());
            return true;
        }
        throw new NatsProtocolException($"unknown protocol operation '{Printable(line)}'");
    }

    /// <summary>MSG subject sid [reply] size / HMSG subject sid [reply] header-size total-size, then payload and CRLF.</summary>
    private bool TryParseMsg(scoped ReadOnlySpan<byte> args, bool headers, ref SequenceReader<byte> reader, out ServerOp op)
    {
        op = default;
        Span<Range> ranges = stackalloc Range[MaxArgs + 1];
        var count = Split(args, ranges);
        var sizes = headers ? 2 : 1;
        if (count < 2 + sizes || count > 3 + sizes)
        {
            throw new NatsProtocolException($"{(headers ? "HMSG" : "MSG")} has {count} arguments: '{Printable(args)}'");
        }
        var subject = Encoding.UTF8.GetString(args[ranges[0]]);
        var sidSpan = args[ranges[1]];
        if (!TryParseNumber(sidSpan, out var sid) || sid == 0)
        {
            throw new NatsProtocolException($"invalid subscription id '{Printable(sidSpan)}'");
        }
        var replyTo = count == 3 + sizes ? Encoding.UTF8.GetString(args[ranges[2]]) : null;
        var total = ParseSize(args[ranges[count - 1]]);
        var headerSize = headers ? ParseSize(args[ranges[count - 2]]) : 0;
        if (headerSize > total)
        {
            throw new NatsProtocolException($"HMSG header size {headerSize} exceeds total size {total}");
        }
        if (reader.Remaining < (long)total + 2)
        {
            return false;
        }
        var data = total == 0 ? [] : new byte[total];
        reader.TryCopyTo(data);
        reader.Advance(total);
        if (!reader.TryRead(out var cr) || !reader.TryRead(out var lf) || cr != (byte)'\r' || lf != (byte)'\n')
        {
            throw new NatsProtocolException($"payload of '{subject}' ({total} bytes) is not followed by CRLF");
        }
        var memory = data.AsMemory();
        op = new ServerOp(ServerOpKind.Msg, null, subject, sid, replyTo, memory[..headerSize], memory[headerSize..]);
        return true;
    }

    private int ParseSize(ReadOnlySpan<byte> span)
    {
        if (!TryParseNumber(span, out var value) || value > int.MaxValue)
        {
            throw new NatsProtocolException($"invalid size '{Printable(span)}'");
        }
        if (value > MaxPayloadBytes)
        {
            throw new NatsProtocolException($"declared message size {value} exceeds the limit of {MaxPayloadBytes} bytes");
        }
        return (int)value;
    }

    /// <summary>Unsigned decimal, at most 18 digits (no sign, no spaces).</summary>
    private static bool TryParseNumber(ReadOnlySpan<byte> span, out long value)
    {
        value = 0;
        if (span.IsEmpty || span.Length > 18)
        {
            return false;
        }
        foreach (var b in span)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }
            value = (value * 10) + (b - '0');
        }
        return true;
    }

    private static int Split(ReadOnlySpan<byte> span, Span<Range> ranges)
    {
        var count = 0;
        var i = 0;
        while (i < span.Length)
        {
            while (i < span.Length && span[i] is (byte)' ' or (byte)'\t')
            {
                i++;
            }
            if (i == span.Length)
            {
                break;
            }
            var start = i;
            while (i < span.Length && span[i] is not ((byte)' ' or (byte)'\t'))
            {
                i++;
            }
            if (count == ranges.Length)
            {
                return count + 1;
            }
            ranges[count++] = new Range(start, i);
        }
        return count;
    }

    private static bool Is(ReadOnlySpan<byte> name, ReadOnlySpan<byte> op) => Ascii.EqualsIgnoreCase(name, op);

    private static bool IsBlank(ReadOnlySpan<byte> rest) => rest.Trim((byte)' ').Trim((byte)'\t').IsEmpty;

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var shown = bytes.Length > 64 ? bytes[..64] : bytes;
        var sb = new StringBuilder(shown.Length);
        foreach (var b in shown)
        {
            sb.Append(b is >= 32 and < 127 ? (char)b : '?');
        }
        return bytes.Length > 64 ? sb.Append("...").ToString() : sb.ToString();
    }
}
