using System.Collections;

namespace Tandem.ChatTemplates.Jinja;

/// <summary>The <c>loop</c> variable of one iteration; members are computed on access, so iterating stays cheap.</summary>
internal sealed class LoopContext : IReadOnlyDictionary<string, object?>
{
    private static readonly string[] Names =
        ["index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0", "previtem", "nextitem", "cycle"];

    private readonly IReadOnlyList<object?> _items;
    private readonly int _index;

    public LoopContext(IReadOnlyList<object?> items, int index)
    {
        _items = items;
        _index = index;
    }

    public int Count => Names.Length;

    public IEnumerable<string> Keys => Names;

    public IEnumerable<object?> Values => Names.Select(name => this[name]);

    public object? this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException(key);

    public bool ContainsKey(string key) => Array.IndexOf(Names, key) >= 0;

    public bool TryGetValue(string key, out object? value)
    {
        long count = _items.Count;
        long i = _index;
        value = key switch
        {
            "index" => i + 1,
            "index0" => i,
            "revindex" => count - i,
            "revindex0" => count - i - 1,
            "first" => i == 0,
            "last" => i == count - 1,
            "length" => count,
            "depth" => 1L,
            "depth0" => 0L,
            "previtem" => i > 0 ? _items[_index - 1] : new Undefined("there is no previous item"),
            "nextitem" => i < count - 1 ? _items[_index + 1] : new Undefined("there is no next item"),
            "cycle" => new Callable("loop.cycle", (args, _) =>
                args.Count == 0 ? throw new TemplateRuntimeException("loop.cycle() needs at least one argument") : args[_index % args.Count]),
            _ => null,
        };
        return ContainsKey(key);
    }

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() =>
        Names.Select(name => new KeyValuePair<string, object?>(name, this[name])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
