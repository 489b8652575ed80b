using Tandem.Engine.Tokenizers;

namespace Tandem.Frontend.Processing;

/// <summary>Turns a request's generated token ids into text: incremental UTF-8-safe detokenization, then stop strings.</summary>
internal sealed class OutputProcessor(Tokenizer tokenizer, IReadOnlyList<string> stops)
{
    private readonly IncrementalDecoder _decoder = tokenizer.CreateIncrementalDecoder(skipSpecial: true);
    private readonly StopStringMatcher _stops = new(stops);

    /// <summary>A stop string matched: the request is done and later tokens are dropped.</summary>
    public bool Stopped => _stops.Stopped;

    /// <summary>Text to send after <paramref name="tokenId"/> (often empty while a character or a possible stop string is incomplete).</summary>
    public string Push(int tokenId)
    {
        LastDecoded = _decoder.Push(tokenId);
        return _stops.Push(LastDecoded);
    }

    /// <summary>The text the last token decoded to before stop strings (a token's text for logprobs).</summary>
    public string LastDecoded { get; private set; } = "";

    /// <summary>The rest of the text when generation ended on its own (EOS or length).</summary>
    public string Finish()
    {
        var tail = _stops.Push(_decoder.Flush());
        return tail + _stops.Flush();
    }
}
