namespace Tandem.ChatTemplates;

/// <summary>
/// A template failed to parse or to render. When the template itself called <c>raise_exception(msg)</c>,
/// <see cref="Exception.Message"/> is exactly <c>msg</c> and <see cref="IsRaisedByTemplate"/> is true: the request
/// does not fit the model's format (e.g. roles do not alternate), which a server reports as a client error.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    public ChatTemplateException()
    {
    }

    public ChatTemplateException(string message)
        : base(message)
    {
    }

    public ChatTemplateException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal ChatTemplateException(string message, int line, int column, bool raisedByTemplate)
        : base(message)
    {
        Line = line;
        Column = column;
        IsRaisedByTemplate = raisedByTemplate;
    }

    /// <summary>1-based line in the template source, or 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source, or 0 when unknown.</summary>
    public int Column { get; }

    /// <summary>True when the template called <c>raise_exception</c>.</summary>
    public bool IsRaisedByTemplate { get; }
}
