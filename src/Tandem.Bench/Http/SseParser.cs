using System.Buffers;
using System.Text;

namespace Tandem.Bench.Http;

/// <summary>
/// Incremental server-sent-events parser: bytes go in as they arrive (split anywhere, even inside a UTF-8 sequence or
/// between CR and LF), complete events come out. Lines end with LF, CRLF or CR; lines starting with ':' are comments
/// (keep-alives); several data lines of one event are joined with LF; an event is dispatched at a blank line. Only the
/// data field matters to OpenAI streams; other fields are ignored.
/// </summary>
internal sealed class SseParser
{
    private readonly ArrayBufferWriter<byte> _line = new(256);
    private readonly StringBuilder _data = new();
    private bool _hasData;
    private bool _lastWasCr;

    /// <summary>Total comment lines seen (keep-alives).</summary>
    public int Comments { get; private set; }

    /// <summary>True when the input so far ends in the middle of an event (bytes of an unfinished line or data lines without the blank line).</summary>
    public bool HasPartialEvent => _line.WrittenCount > 0 || _hasData;

    /// <summary>Feeds bytes; appends the data of every event they complete to <paramref name="events"/>.</summary>
    public void Push(ReadOnlySpan<byte> bytes, List<string> events)
    {
        foreach (var b in bytes)
        {
            if (b == (byte)'\n' && _lastWasCr)
            {
                _lastWasCr = false; // second half of CRLF: the line already ended at CR
                continue;
            }
            _lastWasCr = b == (byte)'\r';
            if (b is (byte)'\n' or (byte)'\r')
            {
                EndLine(events);
            }
            else
            {
                _line.GetSpan(1)[0] = b;
                _line.Advance(1);
            }
        }
    }

    private void EndLine(List<string> events)
    {
        var line = _line.WrittenSpan;
        if (line.IsEmpty)
        {
            if (_hasData)
            {
                events.Add(_data.ToString());
                _data.Clear();
                _hasData = false;
            }
            return;
        }
        if (line[0] == (byte)':')
        {
            Comments++;
        }
        else
        {
            var colon = line.IndexOf((byte)':');
            var field = colon < 0 ? line : line[..colon];
            if (field.SequenceEqual("data"u8))
            {
                var value = colon < 0 ? [] : line[(colon + 1)..];
                if (!value.IsEmpty && value[0] == (byte)' ')
                {
                    value = value[1..];
                }
                if (_hasData)
                {
                    _data.Append('\n');
                }
                _data.Append(Encoding.UTF8.GetString(value));
                _hasData = true;
            }
        }
        _line.Clear();
    }
}
