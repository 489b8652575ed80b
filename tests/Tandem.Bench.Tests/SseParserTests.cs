using System.Text;
using Tandem.Bench.Http;

namespace Tandem.Bench.Tests;

public class SseParserTests
{
    private static (List<string> Events, SseParser Parser) ParseInPieces(byte[] bytes, params int[] cuts)
    {
        var parser = new SseParser();
        var events = new List<string>();
        var start = 0;
        foreach (var cut in cuts.Append(bytes.Length))
        {
            parser.Push(bytes.AsSpan(start, cut - start), events);
            start = cut;
        }
        return (events, parser);
    }

    private const string Stream =
        ": ping\r\n\r\n" +
        "data: {\"choices\":[{\"delta\":{\"content\":\"h\u00e9llo \u4e16\u754c\"}}]}\r\n\r\n" +
        "event: message\nid: 7\ndata: first line\ndata: second line\n\n" +
        ": keep-alive\n" +
        "data:{\"error\":{\"message\":\"boom\"}}\r\r" +
        "data: [DONE]\n\n";

    private static readonly string[] Expected =
    [
        "{\"choices\":[{\"delta\":{\"content\":\"h\u00e9llo \u4e16\u754c\"}}]}",
        "first line\nsecond line",
        "{\"error\":{\"message\":\"boom\"}}",
        "[DONE]",
    ];

    [Fact]
    public void Push_WholeStream_YieldsEveryEventAndCountsComments()
    {
        var (events, parser) = ParseInPieces(Encoding.UTF8.GetBytes(Stream));
        Assert.Equal(Expected, events);
        Assert.Equal(2, parser.Comments);
        Assert.False(parser.HasPartialEvent);
    }

    [Fact]
    public void Push_SplitAtEveryByteBoundary_YieldsTheSameEvents()
    {
        var bytes = Encoding.UTF8.GetBytes(Stream);
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var (events, _) = ParseInPieces(bytes, cut);
            Assert.Equal(Expected, events);
        }
    }

    [Fact]
    public void Push_OneByteAtATime_YieldsTheSameEvents()
    {
        var bytes = Encoding.UTF8.GetBytes(Stream);
        var (events, _) = ParseInPieces(bytes, [.. Enumerable.Range(1, bytes.Length - 1)]);
        Assert.Equal(Expected, events);
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public void Push_AnyLineEnding_EndsEventsAtBlankLines(string eol)
    {
        var text = $"data: a{eol}{eol}data: b{eol}data: c{eol}{eol}";
        var (events, _) = ParseInPieces(Encoding.UTF8.GetBytes(text));
        Assert.Equal(["a", "b\nc"], events);
    }

    [Fact]
    public void Push_TruncatedStream_KeepsThePartialEventPending()
    {
        var (events, parser) = ParseInPieces(Encoding.UTF8.GetBytes("data: a\n\ndata: {\"choices\":[{\"delta\""));
        Assert.Equal(["a"], events);
        Assert.True(parser.HasPartialEvent);

        var (events2, parser2) = ParseInPieces(Encoding.UTF8.GetBytes("data: a\n\ndata: b\n"));
        Assert.Equal(["a"], events2);
        Assert.True(parser2.HasPartialEvent);
    }

    [Fact]
    public void Push_DataWithoutSpaceOrValue_FollowsTheSpec()
    {
        var (events, _) = ParseInPieces(Encoding.UTF8.GetBytes("data\n\ndata:x\n\ndata:  two spaces\n\n"));
        Assert.Equal(["", "x", " two spaces"], events);
    }

    [Fact]
    public void Push_RandomBytes_NeverThrows()
    {
        var random = new Random(42);
        for (var round = 0; round < 200; round++)
        {
            var bytes = new byte[random.Next(0, 400)];
            random.NextBytes(bytes);
            var cut = random.Next(0, bytes.Length + 1);
            var (events, _) = ParseInPieces(bytes, cut);
            Assert.All(events, e => Assert.NotNull(e));
        }
    }
}
