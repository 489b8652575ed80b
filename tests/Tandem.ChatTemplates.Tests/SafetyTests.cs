using System.Diagnostics;
using static Tandem.ChatTemplates.Tests.TestSupport;

namespace Tandem.ChatTemplates.Tests;

/// <summary>Syntax errors point at their source; hostile templates fail fast with a clean exception.</summary>
public class SafetyTests
{
    [Theory]
    [InlineData("{% if x %}\nabc", 2, "Unexpected end of template, expected 'elif' or 'else' or 'endif'")]
    [InlineData("Hello\n{% for %}", 2, "Expected a name but found '%}'")]
    [InlineData("{{ 1 + }}", 1, "Unexpected '}}'")]
    [InlineData("ok\n\n{{ 'abc }}", 3, "Unterminated string literal")]
    [InlineData("{% endif %}", 1, "Unknown or unsupported tag 'endif'")]
    [InlineData("{% include 'other.jinja' %}", 1, "Unknown or unsupported tag 'include'")]
    [InlineData("{{ x ", 1, "Unclosed variable tag")]
    [InlineData("{# never closed", 1, "Unclosed comment")]
    [InlineData("{% for x in y %}{% endif %}", 1, "Unknown or unsupported tag 'endif'")]
    [InlineData("{{ f(a=1, 2) }}", 1, "Positional argument after keyword argument")]
    [InlineData("{{ 99999999999999999999 }}", 1, "Integer literal is too large")]
    [InlineData("{{ 'a' $ 'b' }}", 1, "Unexpected character '$'")]
    public void Parse_SyntaxError_ThrowsWithLineAndColumn(string template, int line, string messageStart)
    {
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.StartsWith(messageStart, e.Message, StringComparison.Ordinal);
        Assert.Equal(line, e.Line);
        Assert.True(e.Column > 0);
        Assert.Contains($"(line {line}, column {e.Column})", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ErrorColumn_PointsAtOffendingToken()
    {
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("line one\n  {% for %}"));
        Assert.Equal(2, e.Line);
        Assert.Equal(10, e.Column);
    }

    [Theory]
    [InlineData("{% for i in range(10**9) %}x{% endfor %}", "exceeds the limit")]
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop iterations")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested more than")]
    [InlineData("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(0) }}", "nested more than")]
    [InlineData("{% for i in range(100000) %}{{ 'x' * 1000000 }}{% endfor %}", "characters")]
    [InlineData("{{ 'x' * 10**12 }}", "characters")]
    [InlineData("{{ [1] * 10**9 }}", "items")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "characters")]
    [InlineData("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "items")]
    [InlineData("{% set big = 'x' * 4000000 %}{% for i in range(1000000) %}{% set t = big ~ big %}{% endfor %}", "too much work")]
    [InlineData("{{ 2 ** 100 }}", "too large")]
    public void Render_HostileTemplate_FailsFastAndCleanly(string template, string messagePart)
    {
        var stopwatch = Stopwatch.StartNew();
        var e = Assert.Throws<ChatTemplateException>(() => Render(template));
        Assert.Contains(messagePart, e.Message, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), $"took {stopwatch.Elapsed}");
    }

    [Theory]
    [InlineData(100_000, "(", "1")]
    [InlineData(50_000, "[", "1")]
    [InlineData(100_000, "not ", "1")]
    [InlineData(100_000, "-", "1")]
    public void Parse_DeeplyNestedExpression_FailsWithoutStackOverflow(int depth, string prefix, string core)
    {
        var closing = prefix switch { "(" => ")", "[" => "]", _ => "" };
        var template = "{{ " + string.Concat(Enumerable.Repeat(prefix, depth)) + core + string.Concat(Enumerable.Repeat(closing, depth)) + " }}";
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.Contains("nested too deeply", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DeeplyNestedBlocks_FailsWithoutStackOverflow()
    {
        var template = string.Concat(Enumerable.Repeat("{% if true %}", 100_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 100_000));
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.Contains("nested too deeply", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NestingWithinLimit_RendersNormally()
    {
        var template = string.Concat(Enumerable.Repeat("{% if true %}", 150)) + "ok" + string.Concat(Enumerable.Repeat("{% endif %}", 150))
            + "{{ " + new string('(', 150) + "1" + new string(')', 150) + " }}";
        Assert.Equal("ok1", Render(template));
    }

    [Fact]
    public void Render_DeeplyNestedExtraData_FailsCleanly()
    {
        object? value = "leaf";
        for (var i = 0; i < 10_000; i++)
        {
            value = new List<object?> { value };
        }
        var e = Assert.Throws<ChatTemplateException>(() => Render("{{ data | tojson }}", new Dictionary<string, object?> { ["data"] = value }));
        Assert.Contains("nested too deeply", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseAndRender_RandomTemplates_NeverThrowAnythingButChatTemplateException()
    {
        string[] pieces =
        [
            "{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " ", "\n", "if", "for", "in", "endif", "endfor", "set", "=", "x", "y",
            "messages", "loop", ".", "[", "]", "(", ")", "'a'", "\"b\"", "1", "2.5", "|", "trim", "length", "is", "defined", "not",
            "and", "or", "~", "*", "/", "%", ",", ":", "else", "elif", "macro", "endmacro", "namespace", "range", "{", "}", "\\",
        ];
        var random = new Random(1234);
        var messages = new[] { new ChatMessage("user", "hi"), new ChatMessage("assistant", null) };
        for (var n = 0; n < 5000; n++)
        {
            var length = random.Next(1, 30);
            var template = string.Concat(Enumerable.Range(0, length).Select(_ => pieces[random.Next(pieces.Length)]));
            try
            {
                ChatTemplate.Parse(template).Render(messages, new ChatTemplateContext());
            }
            catch (ChatTemplateException)
            {
                // Expected for most random inputs.
            }
        }
    }

    [Fact]
    public void Parse_RandomBytes_NeverThrowAnythingButChatTemplateException()
    {
        const string Alphabet = "{}%#-+'\"\\ \nab1().[]|~=<>!*/";
        var random = new Random(42);
        for (var n = 0; n < 2000; n++)
        {
            var chars = new char[random.Next(0, 64)];
            for (var i = 0; i < chars.Length; i++)
            {
                chars[i] = Alphabet[random.Next(Alphabet.Length)];
            }
            try
            {
                ChatTemplate.Parse(new string(chars)).Render([], new ChatTemplateContext());
            }
            catch (ChatTemplateException)
            {
                // Expected for most random inputs.
            }
        }
    }
}
