using System.Collections;
using System.Text;

namespace Tandem.Nats;

/// <summary>
/// NATS message headers (HPUB/HMSG): a <c>NATS/1.0[ status[ description]]</c> line followed by <c>Key: Value</c> lines
/// in HTTP style. Keys keep their spelling and are looked up case-insensitively; a key may repeat.
/// </summary>
public sealed class NatsHeaders : IEnumerable<KeyValuePair<string, string>>
{
    private const string Version = "NATS/1.0";
    private readonly List<KeyValuePair<string, string>> _entries = [];

    /// <summary>Status code of the status line, e.g. 503 when a request found no responders.</summary>
    public int? Status { get; private set; }

    public string? StatusDescription { get; private set; }

    public int Count => _entries.Count;

    /// <summary>The first value of <paramref name="key"/>, or null.</summary>
    public string? this[string key]
    {
        get
        {
            foreach (var e in _entries)
            {
                if (string.Equals(e.Key, key, StringComparison.OrdinalIgnoreCase))
                {
                    return e.Value;
                }
            }
            return null;
        }
    }

    public NatsHeaders Add(string key, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        foreach (var c in key)
        {
            if (c <= ' ' || c == ':' || c > '~')
            {
                throw new ArgumentException($"invalid NATS header key '{key}'", nameof(key));
            }
        }
        if (value.Contains('\r', StringComparison.Ordinal) || value.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException($"NATS header value for '{key}' contains CR or LF", nameof(value));
        }
        _entries.Add(new(key, value));
        return this;
    }

    public IEnumerable<string> GetValues(string key) =>
        _entries.Where(e => string.Equals(e.Key, key, StringComparison.OrdinalIgnoreCase)).Select(e => e.Value);

    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The wire form: status line, header lines, empty line.</summary>
    public byte[] ToBytes()
    {
        var sb = new StringBuilder(Version).Append("\r\n");
        foreach (var e in _entries)
        {
            sb.Append(e.Key).Append(": ").Append(e.Value).Append("\r\n");
        }
        return Encoding.UTF8.GetBytes(sb.Append("\r\n").ToString());
    }

    /// <summary>Parses the header block of an HMSG; throws <see cref="NatsProtocolException"/> when it is malformed.</summary>
    public static NatsHeaders Parse(ReadOnlySpan<byte> block)
    {
        var text = Encoding.UTF8.GetString(block);
        var lines = text.Split("\r\n");
        if (lines.Length < 2 || !lines[0].StartsWith(Version, StringComparison.Ordinal))
        {
            throw new NatsProtocolException($"header block does not start with '{Version}'");
        }
        var headers = new NatsHeaders();
        var status = lines[0][Version.Length..].Trim();
        if (status.Length > 0)
        {
            var space = status.IndexOf(' ', StringComparison.Ordinal);
            var code = space < 0 ? status : status[..space];
            if (code.Length != 3 || !int.TryParse(code, out var value))
            {
                throw new NatsProtocolException($"invalid header status line '{lines[0]}'");
            }
            headers.Status = value;
            headers.StatusDescription = space < 0 ? null : status[(space + 1)..].Trim();
        }
        for (var i = 1; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0)
            {
                continue;
            }
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new NatsProtocolException($"invalid header line '{line}'");
            }
            headers._entries.Add(new(line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }
        return headers;
    }
}
