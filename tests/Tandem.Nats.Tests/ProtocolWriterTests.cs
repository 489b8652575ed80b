using System.Buffers;
using System.Text;
using System.Text.Json;
using Tandem.Nats.Protocol;

namespace Tandem.Nats.Tests;

public class ProtocolWriterTests
{
    private static string Write(Func<IBufferWriter<byte>, int> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var n = write(buffer);
        Assert.Equal(buffer.WrittenCount, n);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [Fact]
    public void WritePublish_WithReply_FormatsPub() =>
        Assert.Equal("PUB a.b r.1 5\r\nhello\r\n", Write(w => ProtocolWriter.WritePublish(w, "a.b", "r.1", [], "hello"u8)));

    [Fact]
    public void WritePublish_WithHeaders_FormatsHpub()
    {
        var headers = new NatsHeaders().Add("K", "v").ToBytes();
        Assert.Equal($"HPUB a 18 20\r\nNATS/1.0\r\nK: v\r\n\r\nhi\r\n", Write(w => ProtocolWriter.WritePublish(w, "a", null, headers, "hi"u8)));
    }

    [Fact]
    public void WriteSubscribe_QueueGroup_FormatsSub() =>
        Assert.Equal("SUB work.* workers 12\r\n", Write(w => ProtocolWriter.WriteSubscribe(w, "work.*", "workers", 12)));

    [Fact]
    public void WriteUnsubscribe_MaxMsgs_FormatsUnsub()
    {
        Assert.Equal("UNSUB 3 10\r\n", Write(w => ProtocolWriter.WriteUnsubscribe(w, 3, 10)));
        Assert.Equal("UNSUB 3\r\n", Write(w => ProtocolWriter.WriteUnsubscribe(w, 3, null)));
    }

    [Fact]
    public void WriteConnect_UserPassword_SendsExpectedFields()
    {
        var options = new NatsOptions { User = "u", Password = "p", Name = "me" };
        var line = Write(w => ProtocolWriter.WriteConnect(w, options, NatsServerAddress.Parse("nats://h:1"), tls: false));
        Assert.StartsWith("CONNECT {", line, StringComparison.Ordinal);
        Assert.EndsWith("}\r\n", line, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(line["CONNECT ".Length..].Trim());
        var root = json.RootElement;
        Assert.False(root.GetProperty("verbose").GetBoolean());
        Assert.False(root.GetProperty("pedantic").GetBoolean());
        Assert.True(root.GetProperty("headers").GetBoolean());
        Assert.True(root.GetProperty("no_responders").GetBoolean());
        Assert.Equal("me", root.GetProperty("name").GetString());
        Assert.Equal("u", root.GetProperty("user").GetString());
        Assert.Equal("p", root.GetProperty("pass").GetString());
        Assert.False(root.TryGetProperty("auth_token", out _));
    }

    [Fact]
    public void WriteConnect_TokenInUrl_SendsAuthToken()
    {
        var line = Write(w => ProtocolWriter.WriteConnect(w, new NatsOptions(), NatsServerAddress.Parse("nats://tok@h:1"), tls: false));
        using var json = JsonDocument.Parse(line["CONNECT ".Length..].Trim());
        Assert.Equal("tok", json.RootElement.GetProperty("auth_token").GetString());
    }
}
