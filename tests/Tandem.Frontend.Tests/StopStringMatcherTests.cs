using Tandem.Frontend.Processing;

namespace Tandem.Frontend.Tests;

public class StopStringMatcherTests
{
    /// <summary>Reference: grow the text one character at a time; the first prefix that ends with a stop string cuts there.</summary>
    private static (string Text, bool Stopped) Reference(string text, IReadOnlyList<string> stops)
    {
        for (var end = 1; end <= text.Length; end++)
        {
            var prefix = text[..end];
            var ending = stops.Where(s => prefix.EndsWith(s, StringComparison.Ordinal)).OrderByDescending(s => s.Length).FirstOrDefault();
            if (ending is not null)
            {
                return (text[..(end - ending.Length)], true);
            }
        }
        return (text, false);
    }

    private static (string Text, bool Stopped, List<string> Released) Run(IEnumerable<string> pieces, IReadOnlyList<string> stops)
    {
        var m = new StopStringMatcher(stops);
        var released = new List<string>();
        foreach (var p in pieces)
        {
            released.Add(m.Push(p));
        }
        released.Add(m.Flush());
        return (string.Concat(released), m.Stopped, released);
    }

    [Fact]
    public void Push_StopSplitAcrossPieces_NeverReleasesAnyPartOfIt()
    {
        var (text, stopped, released) = Run(["Hello wo", "rl", "d! and more"], ["world"]);
        Assert.True(stopped);
        Assert.Equal("Hello ", text);
        Assert.DoesNotContain(released, r => r.Contains('w', StringComparison.Ordinal));
    }

    [Fact]
    public void Push_PartialPrefixThatDoesNotComplete_IsReleasedLater()
    {
        var m = new StopStringMatcher(["</end>"]);
        Assert.Equal("a", m.Push("a</e"));
        Assert.Equal("</ex", m.Push("x"));
        Assert.Equal("", m.Push("</en"));
        Assert.Equal("</en", m.Flush());
        Assert.False(m.Stopped);
    }

    [Fact]
    public void Push_EarliestOfSeveralStops_Wins()
    {
        var (text, stopped, _) = Run(["xx BBB AAA"], ["AAA", "BBB"]);
        Assert.True(stopped);
        Assert.Equal("xx ", text);
    }

    [Fact]
    public void Push_OverlappingStops_TheOneCompleteFirstWinsWhateverTheSplit()
    {
        Assert.Equal("a", Run(["abc"], ["abc", "b"]).Text);
        Assert.Equal("a", Run(["a", "b", "c"], ["abc", "b"]).Text);
    }

    [Fact]
    public void Push_NoStops_PassesEverythingThroughAtOnce()
    {
        var m = new StopStringMatcher([]);
        Assert.Equal("abc", m.Push("abc"));
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void Push_RandomTextsAndSplits_EqualsReference()
    {
        var random = new Random(7);
        const string alphabet = "ab c\n";
        for (var trial = 0; trial < 3000; trial++)
        {
            var text = new string([.. Enumerable.Range(0, random.Next(0, 30)).Select(_ => alphabet[random.Next(alphabet.Length)])]);
            var stops = Enumerable.Range(0, random.Next(1, 4)).Select(_ => new string([.. Enumerable.Range(0, random.Next(1, 5)).Select(_ => alphabet[random.Next(alphabet.Length)])])).ToList();
            var pieces = new List<string>();
            for (var i = 0; i < text.Length;)
            {
                var n = Math.Min(random.Next(0, 4), text.Length - i);
                pieces.Add(text.Substring(i, n));
                i += n;
            }
            var (got, stopped, _) = Run(pieces, stops);
            var (want, wantStopped) = Reference(text, stops);
            Assert.True(want == got && wantStopped == stopped, $"text '{text}', stops [{string.Join("|", stops)}]: got '{got}' ({stopped}), want '{want}' ({wantStopped})");
        }
    }
}
