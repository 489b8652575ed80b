using System.Text;

namespace Tandem.Frontend.Processing;

/// <summary>
/// Applies stop strings to streamed text: releases text only once it can no longer be the start of a stop string, so a
/// stop string split across tokens never leaks into the output. After a match, the text before it is released and
/// everything from the match on is dropped. When stops overlap, the one that is complete first in the text wins.
/// </summary>
internal sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private readonly int _maxLength;
    private readonly StringBuilder _held = new();

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        _stops = [.. stops.Where(s => s.Length > 0)];
        _maxLength = _stops.Length == 0 ? 0 : _stops.Max(s => s.Length);
    }

    /// <summary>True once a stop string matched; later input is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The stop string that matched, if any.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>Adds generated text; returns the part that is now safe to send.</summary>
    public string Push(string text)
    {
        if (Stopped || text.Length == 0)
        {
            return "";
        }
        if (_maxLength == 0)
        {
            return text;
        }
        _held.Append(text);
        var held = _held.ToString();
        // The occurrence that completes first wins (then the one starting first): exactly what a token-by-token check
        // finds, however the text was split into pieces.
        var bestStart = -1;
        var bestEnd = int.MaxValue;
        foreach (var stop in _stops)
        {
            var at = held.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (at + stop.Length < bestEnd || (at + stop.Length == bestEnd && at < bestStart)))
            {
                bestStart = at;
                bestEnd = at + stop.Length;
                MatchedStop = stop;
            }
        }
        if (bestStart >= 0)
        {
            Stopped = true;
            _held.Clear();
            return held[..bestStart];
        }
        var keep = HeldSuffixLength(held);
        _held.Clear().Append(held, held.Length - keep, keep);
        return held[..^keep];
    }

    /// <summary>Generation ended without a match: everything held back is output after all.</summary>
    public string Flush()
    {
        var rest = _held.ToString();
        _held.Clear();
        return Stopped ? "" : rest;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of some stop string.</summary>
    private int HeldSuffixLength(string text)
    {
        for (var k = Math.Min(_maxLength - 1, text.Length); k > 0; k--)
        {
            var suffix = text.AsSpan(text.Length - k);
            foreach (var stop in _stops)
            {
                if (stop.Length > k && stop.AsSpan(0, k).SequenceEqual(suffix))
                {
                    return k;
                }
            }
        }
        return 0;
    }
}
