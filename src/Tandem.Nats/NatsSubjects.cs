namespace Tandem.Nats;

/// <summary>Subject rules: dot-separated non-empty tokens without whitespace; '*' and a last '>' only in subscriptions.</summary>
internal static class NatsSubjects
{
    public static void ValidateSubject(string subject, string parameterName = "subject") => Validate(subject, allowWildcards: false, parameterName);

    public static void ValidatePattern(string pattern, string parameterName = "subject") => Validate(pattern, allowWildcards: true, parameterName);

    public static void ValidateQueueGroup(string queueGroup)
    {
        ArgumentException.ThrowIfNullOrEmpty(queueGroup);
        if (queueGroup.AsSpan().IndexOfAny(" \t\r\n") >= 0)
        {
            throw new ArgumentException($"invalid queue group '{queueGroup}': whitespace", nameof(queueGroup));
        }
    }

    private static void Validate(string subject, bool allowWildcards, string parameterName)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject, parameterName);
        var tokens = subject.Split('.');
        for (var i = 0; i < tokens.Length; i++)
        {
            var t = tokens[i];
            if (t.Length == 0 || t.AsSpan().IndexOfAny(" \t\r\n") >= 0)
            {
                throw new ArgumentException($"invalid subject '{subject}': empty token or whitespace", parameterName);
            }
            if (t is "*" or ">" && !allowWildcards)
            {
                throw new ArgumentException($"invalid subject '{subject}': wildcards are only allowed in subscriptions", parameterName);
            }
            if (t == ">" && i != tokens.Length - 1)
            {
                throw new ArgumentException($"invalid subject '{subject}': '>' must be the last token", parameterName);
            }
        }
    }
}
