using static Tandem.ChatTemplates.Tests.TestSupport;

namespace Tandem.ChatTemplates.Tests;

/// <summary>The Jinja subset, with expectations from Jinja's documented semantics under trim_blocks/lstrip_blocks.</summary>
public class LanguageTests
{
    [Theory]
    [InlineData("a  {%- if true -%}  b  {%- endif -%}  c", "abc")]
    [InlineData("a {{- 'b' -}} c", "abc")]
    [InlineData("{% if true %}\nyes\n{% endif %}\n", "yes\n")]
    [InlineData("  {% if true %}\n  x\n  {% endif %}\nend", "  x\nend")]
    [InlineData("  {{ 'x' }}\n", "  x\n")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]
    [InlineData("a {# note #}\nb", "a b")]
    [InlineData("line\n    {# note #}\nnext", "line\nnext")]
    [InlineData("x {% if true %}y{% endif %}", "x y")]
    [InlineData("{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}")]
    [InlineData("a\r\n{% if true %}\r\nb{% endif %}", "a\r\nb")]
    public void Render_WhitespaceControl_MatchesTrimAndLstripBlocks(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Fact]
    public void Render_LoopVariables_ExposeIndexFirstLastLengthRevindex()
    {
        Assert.Equal(
            "1/0/3/2/True/False/3;2/1/2/1/False/False/3;3/2/1/0/False/True/3;",
            Render("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}"));
        Assert.Equal("-a-b,a-b-c,b-c-", Render("{% for x in ['a', 'b', 'c'] %}{{ loop.previtem|default('') }}-{{ x }}-{{ loop.nextitem|default('') }}{{ ',' if not loop.last }}{% endfor %}"));
        Assert.Equal("odd even odd ", Render("{% for x in range(3) %}{{ loop.cycle('odd', 'even') }} {% endfor %}"));
    }

    [Theory]
    [InlineData("{% for x in range(10) if x is even %}{{ x }}{% else %}none{% endfor %}", "02468")]
    [InlineData("{% for x in range(10) if x > 5 %}{{ loop.index }}/{{ loop.length }} {% endfor %}", "1/4 2/4 3/4 4/4 ")]
    [InlineData("{% for x in [] %}a{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for x in missing %}a{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}", "a=1,b=2,")]
    [InlineData("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}", "ab")]
    [InlineData("{% for c in 'abc' %}{{ c }}.{% endfor %}", "a.b.c.")]
    [InlineData("{% for x in range(10) %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}", "012")]
    [InlineData("{% for x in range(5) %}{% if x is odd %}{% continue %}{% endif %}{{ x }}{% endfor %}", "024")]
    [InlineData("{% for x in range(2, 11, 4) %}{{ x }},{% endfor %}{% for x in range(3, 0, -1) %}{{ x }}{% endfor %}", "2,6,10,321")]
    public void Render_ForLoops_FilterElseUnpackBreakContinue(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1")]
    [InlineData("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", "2")]
    [InlineData("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "6")]
    [InlineData("{% set ns = namespace() %}{% set ns.found = false %}{% for m in ['a', 'b'] %}{% if m == 'b' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}", "True")]
    [InlineData("{% set a, b = 1, 2 %}{{ a }}{{ b }}", "12")]
    [InlineData("{% set x %}a{{ 1 + 1 }}{% endset %}[{{ x }}]", "[a2]")]
    public void Render_SetAndNamespace_FollowJinjaScoping(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Fact]
    public void Render_AttributeAssignmentOnNonNamespace_Throws()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("{% set d = {} %}{% set d.x = 1 %}"));
        Assert.Contains("namespace", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}", "Hi Bob! Hi Al?")]
    [InlineData("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", "321")]
    [InlineData("{% set g = 'global' %}{% macro show() %}{{ g }}{% endmacro %}{% for i in [1] %}{% set g = 'loop' %}{{ show() }}{% endfor %}", "global")]
    [InlineData("{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}", "[]")]
    public void Render_Macros_BindArgumentsDefaultsAndRecursion(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ '  hi \n' | trim }}", "hi")]
    [InlineData("{{ 'xxhixx' | trim('x') }}", "hi")]
    [InlineData("{{ [1, 2, 3] | length }}|{{ 'abcd' | length }}|{{ {'a': 1} | count }}|{{ missing | length }}", "3|4|1|0")]
    [InlineData("{{ 'Hello' | upper }}{{ 'Hello' | lower }}", "HELLOhello")]
    [InlineData("{{ 'hELLO wORLD' | capitalize }}|{{ 'hello big-world' | title }}", "Hello world|Hello Big-World")]
    [InlineData("{{ 1 | string }}{{ none | string }}{{ true | string }}", "1NoneTrue")]
    [InlineData("{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join }}", "a, b|12")]
    [InlineData("{{ missing | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | d('x') }}", "d||d|None")]
    [InlineData("{{ [3, 4] | first }}{{ [3, 4] | last }}{{ 'xyz' | first }}{{ 'xyz' | last }}", "34xz")]
    [InlineData("{{ 'a-b-c' | replace('-', '+') }}|{{ 'a-b-c' | replace('-', '', 1) }}", "a+b+c|ab-c")]
    [InlineData("{% for k, v in {'x': 1} | items %}{{ k }}{{ v }}{% endfor %}", "x1")]
    [InlineData("{{ 'ab' | list }}", "['a', 'b']")]
    [InlineData("{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ 3.9 | int }}|{{ '2.5' | float }}", "43|0|3|2.5")]
    [InlineData("{{ 2.5 | round }}|{{ 3.14159 | round(2) }}|{{ 2.7 | round(0, 'floor') }}", "3.0|3.14|2.0")]
    [InlineData("{{ '<b>' | safe }}", "<b>")]
    [InlineData("{{ [1, 2, 1, 3] | unique | list }}|{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}", "[1, 2, 3]|[3, 2, 1]|cba")]
    [InlineData("{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2, 3] | sum }}|{{ [4, 9, 2] | max }}{{ [4, 9, 2] | min }}", "[1, 2, 3]|[3, 2, 1]|6|92")]
    [InlineData("{{ -3 | abs }}|{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}", "3|a\n  b|  a\n  b")]
    [InlineData("{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}", "[1, 3]|[2, 4]")]
    [InlineData("{{ ['a', 'b'] | map('upper') | join }}", "AB")]
    public void Render_Filters_BehaveLikeJinja(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Fact]
    public void Render_SelectAttrRejectAttrAndMapAttribute_FilterMessages()
    {
        var variables = new Dictionary<string, object?>
        {
            ["msgs"] = new List<object?>
            {
                new Dictionary<string, object?> { ["role"] = "user", ["content"] = "a" },
                new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = "b", ["tool_calls"] = new List<object?> { 1 } },
                new Dictionary<string, object?> { ["role"] = "user", ["content"] = "c" },
            },
        };
        Assert.Equal("a,c", Render("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", variables));
        Assert.Equal("b", Render("{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='content') | join }}", variables));
        Assert.Equal("b", Render("{{ msgs | selectattr('tool_calls', 'defined') | map(attribute='content') | join }}", variables));
        Assert.Equal("b", Render("{{ msgs | selectattr('tool_calls') | map(attribute='content') | first }}", variables));
        Assert.Equal("[None, [1], None]", Render("{{ msgs | map(attribute='tool_calls', default=none) | list }}", variables));
    }

    [Theory]
    [InlineData("{{ {'a': [1, 'x', none, true, 1.5]} | tojson }}", "{\"a\": [1, \"x\", null, true, 1.5]}")]
    [InlineData("{{ {'a': [1], 'b': {}} | tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}")]
    [InlineData("{{ '<é>\n\"' | tojson }}", "\"<é>\\n\\\"\"")]
    [InlineData("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", "{\"a\": 2, \"b\": 1}")]
    public void Render_ToJson_MatchesPythonJsonDumpsWithoutAsciiOrHtmlEscaping(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ [1, 2, 3, 4][1:] }}", "[2, 3, 4]")]
    [InlineData("{{ [1, 2, 3, 4][:-1] }}", "[1, 2, 3]")]
    [InlineData("{{ [1, 2, 3, 4][::-1] }}", "[4, 3, 2, 1]")]
    [InlineData("{{ [1, 2, 3, 4, 5][1:4:2] }}", "[2, 4]")]
    [InlineData("{{ [1, 2, 3][-1] }}|{{ [1, 2, 3][5] }}", "3|")]
    [InlineData("{{ 'hello'[::-1] }}|{{ 'hello'[1:3] }}|{{ 'hello'[0] }}|{{ 'hello'[10:] }}", "olleh|el|h|")]
    [InlineData("{{ [1, 2, 3][-2:] }}|{{ [1, 2, 3][5:1:-1] }}", "[2, 3]|[3]")]
    public void Render_SubscriptsAndSlices_FollowPython(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}", "7|9|3.5|3|-4|1|2|1024")]
    [InlineData("{{ 1 + 1.5 }}|{{ 4 / 2 }}|{{ 1e3 }}|{{ 0.1 + 0.2 }}", "2.5|2.0|1000.0|0.30000000000000004")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ missing }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 'ab' * 2 }}", "a1None|ab|[1, 2]|abab")]
    [InlineData("{{ 1 == 1.0 }}{{ 1 != 2 }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ 'a' < 'b' }}{{ [1, 2] == [1, 2] }}", "TrueTrueTrueFalseTrueTrue")]
    [InlineData("{{ true and 'x' }}|{{ false or 'y' }}|{{ not none }}|{{ 0 or [] }}", "x|y|True|[]")]
    [InlineData("{{ 'a' in ['a'] }}{{ 'x' not in 'abc' }}{{ 'k' in {'k': 1} }}{{ 2 in [1, 2] }}", "TrueTrueTrueTrue")]
    [InlineData("{{ 'yes' if 1 > 0 else 'no' }}|{{ 'yes' if false }}|", "yes||")]
    [InlineData("{{ none }}|{{ true }}|{{ false }}|{{ True }}|{{ None }}|{{ {'a': 'b'} }}|{{ [\"it's\"] }}", "None|True|False|True|None|{'a': 'b'}|[\"it's\"]")]
    [InlineData("{{ 'a\\tb\\n' }}|{{ \"it's\" }}|{{ 'it\\'s' }}|{{ '\\u00e9\\x41' }}|{{ 'a' 'b' }}", "a\tb\n|it's|it's|éA|ab")]
    [InlineData("{{ - 3 + 1 }}|{{ not 1 == 2 }}", "-2|True")]
    public void Render_Expressions_FollowPythonSemantics(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ '\\nx\\n'.strip('\\n') }}", "x|x  |  x|x")]
    [InlineData("{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith('lo') }}{{ 'Hello'.startswith(('x', 'H')) }}", "TrueTrueTrue")]
    [InlineData("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}", "['a', 'b', '', 'c']|['a', 'b']|['a', 'b,c']")]
    [InlineData("{{ 'abc'.upper() }}{{ 'ABC'.lower() }}{{ 'a-b'.replace('-', '+') }}{{ 'hello world'.title() }}", "ABCabca+bHello World")]
    [InlineData("{{ {'a': 1}.get('a') }}|{{ {'a': 1}.get('b', 'z') }}|{{ {'a': 1}.get('b') }}|{{ {'a': 1, 'b': 2}.keys() | list }}|{{ {'a': 1}.values() | list }}", "1|z|None|['a', 'b']|[1]")]
    [InlineData("{{ '-'.join(['a', 'b']) }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.count('bc') }}", "a-b|2|2")]
    [InlineData("{{ '<think>x</think>y'.split('</think>')[0].split('<think>')[-1] }}", "x")]
    public void Render_StringAndDictMethods_FollowPython(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ x is defined }}|{{ x is undefined }}|{{ none is none }}|{{ 1 is none }}", "False|True|True|False")]
    [InlineData("{{ 'a' is string }}|{{ {} is mapping }}|{{ [] is mapping }}|{{ [] is iterable }}|{{ 'a' is iterable }}|{{ 1 is iterable }}", "True|True|False|True|True|False")]
    [InlineData("{{ [] is sequence }}|{{ 1 is number }}|{{ 1.5 is number }}|{{ 'a' is number }}|{{ true is boolean }}|{{ 1 is boolean }}", "True|True|True|False|True|False")]
    [InlineData("{{ false is false }}|{{ 0 is false }}|{{ true is true }}|{{ 1 is integer }}|{{ 1.0 is float }}", "True|False|True|True|True")]
    [InlineData("{{ 4 is divisibleby 2 }}|{{ 4 is divisibleby(3) }}|{{ 3 is odd }}|{{ 3 is even }}|{{ 'a' is equalto 'a' }}|{{ 1 is not none }}", "True|False|True|False|True|True")]
    [InlineData("{{ range is callable }}|{{ 'abc' is lower }}|{{ 'ABC' is upper }}|{{ 2 is in [1, 2] }}", "True|True|True|True")]
    public void Render_Tests_FollowJinja(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("[{{ missing }}]", "[]")]
    [InlineData("{% if missing %}y{% else %}n{% endif %}", "n")]
    [InlineData("{{ {'a': 1}.b is defined }}|{{ {'a': 1}['b'] is defined }}|{{ none.x is defined }}|{{ 'str'.x is defined }}", "False|False|False|False")]
    [InlineData("{{ missing | default('d') }}|{{ missing ~ 'x' }}|{{ missing | trim }}|{{ missing == missing }}|{{ missing is none }}", "d|x||True|False")]
    [InlineData("{{ 'x' in missing }}|{{ missing | list }}", "False|[]")]
    public void Render_Undefined_IsFalsyAndEmpty(string template, string expected) =>
        Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ missing.attr }}", "'missing' is undefined")]
    [InlineData("{{ missing['k'] }}", "'missing' is undefined")]
    [InlineData("{{ missing + 1 }}", "'missing' is undefined")]
    [InlineData("{{ missing() }}", "'missing' is undefined")]
    [InlineData("{{ {'a': 1}.b.c }}", "'dict object' has no attribute 'b'")]
    [InlineData("{{ missing | tojson }}", "'missing' is undefined")]
    public void Render_UndefinedUsedWhereJinjaErrors_Throws(string template, string expectedStart)
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render(template));
        Assert.StartsWith(expectedStart, e.Message, StringComparison.Ordinal);
        Assert.False(e.IsRaisedByTemplate);
    }

    [Theory]
    [InlineData("{{ 1 + 'a' }}", "unsupported operand type(s) for +: 'int' and 'str'")]
    [InlineData("{{ 1 / 0 }}", "division by zero")]
    [InlineData("{{ none | length }}", "object of type 'NoneType' has no len()")]
    [InlineData("{% for x in none %}{% endfor %}", "'NoneType' object is not iterable")]
    [InlineData("{{ 'a' | nosuchfilter }}", "No filter named 'nosuchfilter'")]
    [InlineData("{{ 1 is nosuchtest }}", "No test named 'nosuchtest'")]
    [InlineData("{{ 1 < 'a' }}", "'<' not supported between instances of 'int' and 'str'")]
    public void Render_RuntimeError_ThrowsWithClearMessage(string template, string expectedStart)
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render(template));
        Assert.StartsWith(expectedStart, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_RuntimeError_ReportsLineAndColumn()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("first line\n  {{ 1 + 'x' }}"));
        Assert.Equal(2, e.Line);
        Assert.Contains("(line 2, column", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_RaiseException_MessageIsExactlyTheTemplateMessage()
    {
        var e = Assert.Throws<ChatTemplateException>(() => Render("ok\n{% if true %}{{ raise_exception('Bad ' ~ 'roles!') }}{% endif %}"));
        Assert.Equal("Bad roles!", e.Message);
        Assert.True(e.IsRaisedByTemplate);
        Assert.Equal(2, e.Line);
    }

    [Fact]
    public void Render_StrftimeNow_FormatsTheContextClock()
    {
        var template = ChatTemplate.Parse("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %-d %j %p %I') }}");
        var context = new ChatTemplateContext { TimeProvider = new FixedTimeProvider(new DateTimeOffset(2024, 7, 6, 15, 4, 5, TimeSpan.Zero)) };
        Assert.Equal("06 Jul 2024|2024-07-06 15:04:05 Saturday July 6 188 PM 03", template.Render([], context));
    }

    [Fact]
    public void Render_MessagesAndContext_AreExposedAsHuggingFaceVariables()
    {
        ChatMessage[] messages =
        [
            new("assistant", null) { ToolCalls = [new ChatToolCall("c1", "f", "{\"x\": [1, 2.5]}"), new ChatToolCall("c2", "g", "not json")] },
            new("tool", "r") { ToolCallId = "c1", Name = "f" },
        ];
        var template = ChatTemplate.Parse(
            "{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ 'tool_calls' in m }}:{{ m.tool_call_id is defined }}:{{ m.name }};{% endfor %}"
            + "{{ messages[0].tool_calls[0].function.arguments | tojson }}|{{ messages[0].tool_calls[1].function.arguments }}|{{ messages[0].tool_calls[0].type }}|"
            + "{{ add_generation_prompt }}|{{ bos_token }}|{{ eos_token }}|{{ tools }}|{{ flag }}|{{ nested.list[1] }}");
        var context = new ChatTemplateContext
        {
            AddGenerationPrompt = false,
            BosToken = "<s>",
            EosToken = "</s>",
            Extra = new Dictionary<string, object?> { ["flag"] = true, ["nested"] = new Dictionary<string, object?> { ["list"] = new[] { 1, 2 } } },
        };
        Assert.Equal(
            "assistant:None:True:False:;tool:r:False:True:f;{\"x\": [1, 2.5]}|not json|function|False|<s>|</s>|None|True|2",
            template.Render(messages, context));
    }

    [Fact]
    public void Render_JsonElementExtra_IsConvertedToTemplateValues()
    {
        using var document = System.Text.Json.JsonDocument.Parse("""{"tools": [{"name": "t", "n": 3, "f": 0.5, "ok": false, "none": null}]}""");
        var extra = new Dictionary<string, object?> { ["tools"] = document.RootElement.GetProperty("tools") };
        Assert.Equal("[{\"name\": \"t\", \"n\": 3, \"f\": 0.5, \"ok\": false, \"none\": null}]", Render("{{ tools | tojson }}", extra));
    }

    [Fact]
    public void Render_SameTemplateFromManyThreads_ProducesSameOutput()
    {
        var template = ChatTemplate.Parse("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ m.content }}{% endfor %}{{ ns.n }}");
        ChatMessage[] messages = [new("user", "a"), new("assistant", "b")];
        var results = new string[64];
        Parallel.For(0, results.Length, i => results[i] = template.Render(messages, new ChatTemplateContext()));
        Assert.All(results, r => Assert.Equal("ab2", r));
    }
}
