namespace Tandem.Bench.Workloads;

/// <summary>
/// Builds prompts as sequences of units: word indices for text prompts, token ids for token-id prompts. A token length
/// maps to <c>round(tokens / tokensPerWord)</c> words for text and to exactly that many ids for token ids.
/// </summary>
internal sealed class PromptFactory
{
    private readonly PromptFormat _format;
    private readonly double _tokensPerWord;
    private readonly int _lowestId;
    private readonly int _vocabSize;

    public PromptFactory(PromptFormat format, double tokensPerWord, int vocabSize)
    {
        _format = format;
        _tokensPerWord = tokensPerWord;
        _vocabSize = vocabSize;
        // The lowest ids are special tokens (BOS/EOS/UNK/pad, byte fallbacks) on most vocabularies: stay above them.
        _lowestId = Math.Min(300, vocabSize / 4);
    }

    /// <summary>Number of units that stand for <paramref name="tokens"/> tokens.</summary>
    public int UnitsFor(int tokens) => _format == PromptFormat.TokenIds ? tokens : Math.Max(1, (int)Math.Round(tokens / _tokensPerWord));

    /// <summary>Approximate token count of <paramref name="units"/> units.</summary>
    public int TokensFor(int units) => _format == PromptFormat.TokenIds ? units : (int)Math.Round(units * _tokensPerWord);

    public void Fill(Random random, Span<int> units)
    {
        var (low, high) = _format == PromptFormat.TokenIds ? (_lowestId, _vocabSize) : (0, WordList.Words.Length);
        for (var i = 0; i < units.Length; i++)
        {
            units[i] = random.Next(low, high);
        }
    }

    public BenchRequest Create(int index, ReadOnlySpan<int> units, int outputTokens)
    {
        var tokens = TokensFor(units.Length);
        return _format == PromptFormat.TokenIds
            ? new BenchRequest(index, null, units.ToArray(), tokens, outputTokens)
            : new BenchRequest(index, Render(units), null, tokens, outputTokens);
    }

    public static string Render(ReadOnlySpan<int> wordIndices)
    {
        var builder = new System.Text.StringBuilder(wordIndices.Length * 6);
        for (var i = 0; i < wordIndices.Length; i++)
        {
            if (i > 0)
            {
                builder.Append(' ');
            }
            builder.Append(WordList.Words[wordIndices[i]]);
        }
        return builder.ToString();
    }
}
