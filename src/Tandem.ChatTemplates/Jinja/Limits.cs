namespace Tandem.ChatTemplates.Jinja;

/// <summary>Bounds that make a hostile template fail fast instead of hanging, exhausting memory or the stack.</summary>
internal static class Limits
{
    /// <summary>Longest rendered prompt or intermediate string, in UTF-16 code units.</summary>
    public const int MaxStringLength = 32 * 1024 * 1024;

    /// <summary>Longest list a template may build (<c>range</c>, <c>+</c>, <c>*</c>).</summary>
    public const int MaxListLength = 1_000_000;

    /// <summary>Loop iterations over the whole render.</summary>
    public const long MaxLoopIterations = 1_000_000;

    /// <summary>
    /// Work units over the whole render: one per evaluated node plus the length of every string or list built or written.
    /// Legitimate prompts, even near <see cref="MaxStringLength"/>, use a small fraction.
    /// </summary>
    public const long MaxWork = 100_000_000;

    /// <summary>Nested macro calls.</summary>
    public const int MaxCallDepth = 64;

    /// <summary>Nesting of data values for <c>tojson</c>, repr and comparisons.</summary>
    public const int MaxDataDepth = 128;
}
