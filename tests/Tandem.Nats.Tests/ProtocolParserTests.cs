using System.Buffers;
using System.Text;
using Tandem.Nats.Protocol;

namespace Tandem.Nats.Tests;

public class ProtocolParserTests
{
    private const string Mixed =
        "INFO {\"server_id\":\"S1\",\"version\":\"2.9.10\",\"headers\":true,\"max_payload\":1048576}\r\n" +
        "MSG a.b 1 5\r\nhello\r\n" +
        "PING\r\n" +
        "msg a.c 2 _INBOX.x.1 0\r\n\r\n" +
        "HMSG h.x 3 _INBOX.x.2 12 17\r\nNATS/1.0\r\n\r\nworld\r\n" +
        "+OK\r\n" +
        "HMSG _INBOX.x.3 4 16 16\r\nNATS/1.0 503\r\n\r\n\r\n" +
        "PONG\r\n" +
        "-ERR 'Permissions Violation for Publish to \"x\"'\r\n" +
        "MSG  tabs.and.spaces\t5   3\r\na\r\n\r\n";

    private static readonly string[] Expected =
    [
        "Info:{\"server_id\":\"S1\",\"version\":\"2.9.10\",\"headers\":true,\"max_payload\":1048576}",
        "Msg:a.b:1::0:hello",
        "Ping",
        "Msg:a.c:2:_INBOX.x.1:0:",
        "Msg:h.x:3:_INBOX.x.2:12:world",
        "Ok",
        "Msg:_INBOX.x.3:4::16:",
        "Pong",
        "Err:Permissions Violation for Publish to \"x\"",
        "Msg:tabs.and.spaces:5::0:a\r\n",
    ];

    private static string Describe(ServerOp op) => op.Kind switch
    {
        ServerOpKind.Msg => $"Msg:{op.Subject}:{op.Sid}:{op.ReplyTo}:{op.HeaderBlock.Length}:{Encoding.UTF8.GetString(op.Payload.Span)}",
        ServerOpKind.Info or ServerOpKind.Err => $"{op.Kind}:{op.Text}",
        _ => op.Kind.ToString(),
    };

    /// <summary>Parses all complete operations, returning what is left (like a pipe reader loop).</summary>
    private static ReadOnlySequence<byte> Drain(ProtocolParser parser, ReadOnlySequence<byte> buffer, List<string> output)
    {
        while (parser.TryRead(ref buffer, out var op))
        {
            output.Add(Describe(op));
        }
        return buffer;
    }

    [Fact]
    public void TryRead_WholeStream_ParsesEveryOperation()
    {
        var output = new List<string>();
        var rest = Drain(new ProtocolParser(1024 * 1024), new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(Mixed)), output);
        Assert.Equal(Expected, output);
        Assert.True(rest.IsEmpty);
    }

    [Fact]
    public void TryRead_EverySplitPosition_ParsesSameOperations()
    {
        var bytes = Encoding.UTF8.GetBytes(Mixed);
        var parser = new ProtocolParser(1024 * 1024);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var output = new List<string>();
            // First only the bytes before the split arrive, then everything (as two segments).
            var rest = Drain(parser, new ReadOnlySequence<byte>(bytes, 0, split), output);
            var consumed = split - (int)rest.Length;
            var remaining = Segments.Create(bytes.AsSpan(consumed, split - consumed).ToArray(), bytes.AsSpan(split).ToArray());
            rest = Drain(parser, remaining, output);
            Assert.True(Expected.SequenceEqual(output), $"split at {split}: {string.Join(" | ", output)}");
            Assert.True(rest.IsEmpty);
        }
    }

    [Fact]
    public void TryRead_OneByteSegments_ParsesSameOperations()
    {
        var bytes = Encoding.UTF8.GetBytes(Mixed);
        var output = new List<string>();
        var rest = Drain(new ProtocolParser(1024 * 1024), Segments.Create([.. bytes.Select(b => new[] { b })]), output);
        Assert.Equal(Expected, output);
        Assert.True(rest.IsEmpty);
    }

    [Theory]
    [InlineData("MSG a 1 -5\r\n", "invalid size")]
    [InlineData("MSG a 1 abc\r\n", "invalid size")]
    [InlineData("MSG a 1 5 6 7\r\n", "arguments")]
    [InlineData("MSG a\r\n", "arguments")]
    [InlineData("MSG a 0 1\r\nx\r\n", "subscription id")]
    [InlineData("MSG a x 1\r\nx\r\n", "subscription id")]
    [InlineData("MSG a 1 99999999999999999999\r\n", "invalid size")]
    [InlineData("MSG a 1 2000000\r\n", "exceeds the limit")]
    [InlineData("MSG a 1 5\r\nhelloXX", "not followed by CRLF")]
    [InlineData("HMSG a 1 10 5\r\n", "exceeds total size")]
    [InlineData("HMSG a 1 5\r\nhello\r\n", "arguments")]
    [InlineData("PING\n", "CRLF")]
    [InlineData("PING extra\r\n", "unknown protocol operation")]
    [InlineData("FOO bar\r\n", "unknown protocol operation")]
    [InlineData("\r\n", "unknown protocol operation")]
    public void TryRead_MalformedInput_ThrowsProtocolException(string input, string expected)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(input));
        var ex = Assert.Throws<NatsProtocolException>(() => new ProtocolParser(1024 * 1024).TryRead(ref buffer, out _));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_LongLineWithoutCrlf_ThrowsInsteadOfWaiting()
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("INFO " + new string('x', 100)));
        var parser = new ProtocolParser(1024 * 1024, maxControlLineBytes: 64);
        var ex = Assert.Throws<NatsProtocolException>(() => parser.TryRead(ref buffer, out _));
        Assert.Contains("without CRLF", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_IncompletePayload_WaitsWithoutConsuming()
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("MSG a 1 10\r\nhello"));
        Assert.False(new ProtocolParser(1024).TryRead(ref buffer, out _));
        Assert.Equal(17, buffer.Length);
    }

    [Fact]
    public void TryRead_RandomBytes_TerminatesWithMessagesOrProtocolException()
    {
        var random = new Random(1234);
        var valid = Encoding.UTF8.GetBytes(Mixed);
        var parser = new ProtocolParser(4096, maxControlLineBytes: 1024);
        int parsed = 0, failed = 0;
        for (var i = 0; i < 3000; i++)
        {
            byte[] input;
            if (i % 2 == 0)
            {
                input = new byte[random.Next(0, 300)];
                random.NextBytes(input);
            }
            else
            {
                // Mutate a valid stream: flip a few bytes, so most of the structure survives.
                input = (byte[])valid.Clone();
                for (var k = random.Next(1, 4); k > 0; k--)
                {
                    input[random.Next(input.Length)] = (byte)random.Next(256);
                }
            }
            var buffer = new ReadOnlySequence<byte>(input);
            try
            {
                var steps = 0;
                while (parser.TryRead(ref buffer, out _))
                {
                    parsed++;
                    Assert.True(++steps <= input.Length, "parser made no progress");
                }
            }
            catch (NatsProtocolException)
            {
                failed++;
            }
        }
        Assert.True(parsed > 0 && failed > 0, $"parsed {parsed}, failed {failed}");
    }

    [Fact]
    public void Parse_StatusLineAndHeaders_ReadsStatusAndValues()
    {
        var headers = NatsHeaders.Parse("NATS/1.0 503 No Responders\r\nA: 1\r\nb: two\r\na: 3\r\n\r\n"u8);
        Assert.Equal(503, headers.Status);
        Assert.Equal("No Responders", headers.StatusDescription);
        Assert.Equal("1", headers["a"]);
        Assert.Equal(["1", "3"], headers.GetValues("A"));
        Assert.Equal("two", headers["B"]);
    }

    [Theory]
    [InlineData("HTTP/1.1\r\n\r\n")]
    [InlineData("NATS/1.0 5x3\r\n\r\n")]
    [InlineData("NATS/1.0\r\nno-colon\r\n\r\n")]
    public void Parse_MalformedHeaders_ThrowsProtocolException(string block) =>
        Assert.Throws<NatsProtocolException>(() => NatsHeaders.Parse(Encoding.UTF8.GetBytes(block)));

    [Fact]
    public void ToBytes_Headers_RoundTrip()
    {
        var headers = new NatsHeaders().Add("X-Id", "7").Add("X-Multi", "a").Add("X-Multi", "b");
        var parsed = NatsHeaders.Parse(headers.ToBytes());
        Assert.Null(parsed.Status);
        Assert.Equal("7", parsed["x-id"]);
        Assert.Equal(["a", "b"], parsed.GetValues("X-Multi"));
    }

    [Fact]
    public void Add_HeaderValueWithNewline_Throws() => Assert.Throws<ArgumentException>(() => new NatsHeaders().Add("a", "x\r\ny"));
}

/// <summary>Builds a multi-segment sequence.</summary>
internal sealed class Segments : ReadOnlySequenceSegment<byte>
{
    private Segments(byte[] data) => Memory = data;

    public static ReadOnlySequence<byte> Create(params byte[][] parts)
    {
        if (parts.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }
        var first = new Segments(parts[0]);
        var last = first;
        foreach (var part in parts.Skip(1))
        {
            var next = new Segments(part) { RunningIndex = last.RunningIndex + last.Memory.Length };
            last.Next = next;
            last = next;
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
