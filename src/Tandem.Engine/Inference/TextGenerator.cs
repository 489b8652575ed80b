using System.Diagnostics;
using Tandem.Abstractions;
using Tandem.Engine.Sampling;
using Tandem.Engine.Tokenizers;

namespace Tandem.Engine.Inference;

/// <summary>
/// Single-sequence generation: prefill the prompt in chunks, then decode token by token over a paged cache.
/// The serving engine batches many sequences; this is the simplest correct loop (used by `tandem generate`, tests and benchmarks).
/// </summary>
public sealed class TextGenerator
{
    private readonly Transformer _model;
    private readonly Tokenizer _tokenizer;
    private readonly int _blockSize;

    public TextGenerator(Transformer model, Tokenizer tokenizer, int blockSize = 16)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        _model = model;
        _tokenizer = tokenizer;
        _blockSize = blockSize;
    }

    /// <summary>Generates from prompt ids; <paramref name="onText"/> receives each newly completed piece of text.</summary>
    public GenerationResult Generate(IReadOnlyList<int> prompt, GenerationOptions options, Action<int, string>? onText = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        options.Sampling.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxTokens, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PrefillChunk, 1);
        var config = _model.Config;
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt has no tokens", nameof(prompt));
        }
        if (prompt.Count >= config.ContextLength)
        {
            throw new ArgumentException($"the prompt has {prompt.Count} tokens; the model's context length is {config.ContextLength}", nameof(prompt));
        }
        var maxLength = Math.Min(config.ContextLength, prompt.Count + options.MaxTokens);
        var blocks = (maxLength + _blockSize - 1) / _blockSize;
        using var cache = _model.CreateCache(blocks, _blockSize);
        var seq = new KvSequence();
        if (!seq.TryReserve(cache, maxLength))
        {
            throw new InvalidOperationException("cache sized too small");
        }

        var stops = new HashSet<int>(options.StopTokenIds);
        if (!options.IgnoreEos)
        {
            stops.UnionWith(_tokenizer.StopTokenIds);
        }
        var sampler = new Sampler(options.Sampling);
        var logits = new float[config.VocabSize];
        var promptArray = prompt.ToArray();
        var output = new List<int>();
        var decoder = _tokenizer.CreateIncrementalDecoder();
        var text = new System.Text.StringBuilder();

        var clock = Stopwatch.StartNew();
        for (var start = 0; start < promptArray.Length; start += options.PrefillChunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = Math.Min(options.PrefillChunk, promptArray.Length - start);
            var last = start + n == promptArray.Length;
            _model.Forward(cache, [new ForwardChunk(seq, promptArray.AsMemory(start, n), last)], logits);
        }
        var prefillTime = clock.Elapsed;
        clock.Restart();

        var finish = FinishReason.Length;
        while (output.Count < options.MaxTokens)
        {
            var token = sampler.Sample(logits, promptArray, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output));
            output.Add(token);
            if (stops.Contains(token))
            {
                finish = FinishReason.Stop;
                break;
            }
            var piece = decoder.Push(token);
            if (piece.Length > 0)
            {
                text.Append(piece);
                onText?.Invoke(token, piece);
            }
            if (output.Count >= options.MaxTokens || seq.Length >= maxLength)
            {
                break;
            }
            cancellationToken.ThrowIfCancellationRequested();
            _model.Forward(cache, [new ForwardChunk(seq, new[] { token })], logits);
        }
        var rest = decoder.Flush();
        if (rest.Length > 0)
        {
            text.Append(rest);
            onText?.Invoke(-1, rest);
        }
        return new GenerationResult(promptArray, output, text.ToString(), finish, prefillTime, clock.Elapsed);
    }
}
