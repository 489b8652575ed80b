namespace Tandem.ChatTemplates.Jinja;

/// <summary>Template source with line/column lookup for error messages.</summary>
internal sealed class SourceText
{
    private readonly List<int> _lineStarts = [0];

    public SourceText(string text)
    {
        Text = text;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\n')
            {
                _lineStarts.Add(i + 1);
            }
        }
    }

    public string Text { get; }

    public (int Line, int Column) Locate(int position)
    {
        var index = _lineStarts.BinarySearch(position);
        if (index < 0)
        {
            index = ~index - 1;
        }
        return (index + 1, position - _lineStarts[index] + 1);
    }

    public ChatTemplateException Error(string message, int position)
    {
        var (line, column) = Locate(position);
        return new ChatTemplateException($"{message} (line {line}, column {column})", line, column, raisedByTemplate: false);
    }
}
