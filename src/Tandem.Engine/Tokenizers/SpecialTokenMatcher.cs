namespace Tandem.Engine.Tokenizers;

/// <summary>Finds special/added token text in input, longest match first.</summary>
internal sealed class SpecialTokenMatcher
{
    private readonly Dictionary<char, (string Text, int Id)[]> _byFirstChar;

    public SpecialTokenMatcher(string[] tokens, TokenType[] types)
    {
        var groups = new Dictionary<char, List<(string Text, int Id)>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < tokens.Length; i++)
        {
            if ((types[i] == TokenType.Control || types[i] == TokenType.UserDefined) && tokens[i].Length > 0 && seen.Add(tokens[i]))
            {
                if (!groups.TryGetValue(tokens[i][0], out var list))
                {
                    list = [];
                    groups[tokens[i][0]] = list;
                }
                list.Add((tokens[i], i));
            }
        }
        _byFirstChar = groups.ToDictionary(
            g => g.Key,
            g => g.Value.OrderByDescending(t => t.Text.Length).ThenBy(t => t.Id).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>The longest special token starting at <paramref name="position"/>.</summary>
    public bool TryMatch(ReadOnlySpan<char> text, int position, out int id, out int length)
    {
        if (_byFirstChar.TryGetValue(text[position], out var candidates))
        {
            var rest = text[position..];
            foreach (var (candidate, candidateId) in candidates)
            {
                if (rest.StartsWith(candidate, StringComparison.Ordinal))
                {
                    id = candidateId;
                    length = candidate.Length;
                    return true;
                }
            }
        }
        id = -1;
        length = 0;
        return false;
    }
}
