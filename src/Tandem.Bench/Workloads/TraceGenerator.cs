using System.Globalization;
using System.Text;

namespace Tandem.Bench.Workloads;

/// <summary>Settings of a synthetic Mooncake-format trace (`tandem trace generate`).</summary>
public sealed record TraceGeneratorOptions
{
    /// <summary>Records to write (turns over all conversations).</summary>
    public int Requests { get; init; } = 1000;

    /// <summary>Tokens per hash id (Mooncake traces use 512).</summary>
    public int BlockTokens { get; init; } = 512;

    /// <summary>New conversations per second (Poisson).</summary>
    public double ConversationRate { get; init; } = 2.0;

    /// <summary>Distinct shared system prompts; conversations pick them with Zipf-like popularity (the first is the most used).</summary>
    public int SystemPrompts { get; init; } = 10;

    /// <summary>System prompt length in blocks: uniform in [min, max].</summary>
    public int SystemPromptMinBlocks { get; init; } = 2;
    public int SystemPromptMaxBlocks { get; init; } = 8;

    /// <summary>Mean turns per conversation (geometric, at least 1).</summary>
    public double MeanTurns { get; init; } = 4;

    /// <summary>New user tokens per turn: uniform in [min, max].</summary>
    public int UserMinTokens { get; init; } = 64;
    public int UserMaxTokens { get; init; } = 1024;

    /// <summary>Output tokens per turn: uniform in [min, max]; the answer becomes part of the next turn's prompt.</summary>
    public int OutputMinTokens { get; init; } = 32;
    public int OutputMaxTokens { get; init; } = 384;

    /// <summary>Mean pause between a turn and the next one of the same conversation (exponential), in seconds.</summary>
    public double MeanThinkSeconds { get; init; } = 10;

    /// <summary>Longest prompt; a conversation ends when its next turn would exceed it.</summary>
    public int MaxInputTokens { get; init; } = 32768;

    public int Seed { get; init; }

    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok)
            {
                throw new ArgumentException(message);
            }
        }
        Check(Requests >= 1, "--requests must be ≥ 1");
        Check(BlockTokens >= 1, "--block-tokens must be ≥ 1");
        Check(ConversationRate > 0, "--conversation-rate must be > 0");
        Check(SystemPrompts >= 0, "--system-prompts must be ≥ 0");
        Check(SystemPromptMinBlocks >= 0 && SystemPromptMaxBlocks >= SystemPromptMinBlocks, "system prompt blocks: 0 ≤ min ≤ max");
        Check(MeanTurns >= 1, "--mean-turns must be ≥ 1");
        Check(UserMinTokens >= 1 && UserMaxTokens >= UserMinTokens, "user tokens: 1 ≤ min ≤ max");
        Check(OutputMinTokens >= 1 && OutputMaxTokens >= OutputMinTokens, "output tokens: 1 ≤ min ≤ max");
        Check(MeanThinkSeconds >= 0, "--mean-think-seconds must be ≥ 0");
        Check(MaxInputTokens > BlockTokens, "--max-input-tokens must exceed one block");
    }
}

/// <summary>
/// Writes a synthetic Mooncake-format trace with realistic prefix sharing: conversations start as a Poisson process,
/// each opens with one of a few shared system prompts (Zipf-like popularity), and every turn's prompt is the previous
/// turn's prompt, the previous answer and a new user message — so turn k shares all but its last blocks with turn k−1.
/// Hash ids stand for blocks of <see cref="TraceGeneratorOptions.BlockTokens"/> tokens; a block that ends a prompt
/// part-way is continued (same id) by the next turn, as in the real traces.
/// </summary>
public static class TraceGenerator
{
    private sealed class Conversation
    {
        public List<long> Blocks { get; } = [];
        public int Tokens { get; set; }
        public int TurnsLeft { get; set; }
        public double NextAt { get; set; }
    }

    /// <summary>The trace's records as JSONL lines, ordered by timestamp.</summary>
    public static IEnumerable<string> Generate(TraceGeneratorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var random = new Random(options.Seed);
        var b = options.BlockTokens;
        long nextId = 0;
        var systems = new List<long[]>();
        for (var i = 0; i < options.SystemPrompts; i++)
        {
            var n = random.Next(options.SystemPromptMinBlocks, options.SystemPromptMaxBlocks + 1);
            systems.Add([.. Enumerable.Range(0, n).Select(_ => nextId++)]);
        }
        // Zipf(1) popularity over system prompts.
        var weights = Enumerable.Range(1, Math.Max(1, systems.Count)).Select(k => 1.0 / k).ToArray();
        var total = weights.Sum();

        var pending = new PriorityQueue<Conversation, double>();
        var nextStart = 0.0;
        var written = 0;
        while (written < options.Requests)
        {
            // Start conversations due before the next pending turn.
            while (pending.Count == 0 || (pending.TryPeek(out _, out var at) && nextStart <= at))
            {
                var c = new Conversation { NextAt = nextStart, TurnsLeft = 1 + Geometric(random, options.MeanTurns - 1) };
                if (systems.Count > 0)
                {
                    var u = random.NextDouble() * total;
                    var k = 0;
                    while (k < weights.Length - 1 && (u -= weights[k]) > 0)
                    {
                        k++;
                    }
                    c.Blocks.AddRange(systems[k]);
                    c.Tokens = systems[k].Length * b;
                }
                pending.Enqueue(c, c.NextAt);
                nextStart += -Math.Log(1 - random.NextDouble()) / options.ConversationRate;
            }
            var conv = pending.Dequeue();
            var user = random.Next(options.UserMinTokens, options.UserMaxTokens + 1);
            var input = conv.Tokens + user;
            if (input > options.MaxInputTokens)
            {
                continue; // the conversation ends
            }
            Extend(conv, input, b, ref nextId);
            var output = random.Next(options.OutputMinTokens, options.OutputMaxTokens + 1);
            yield return string.Create(CultureInfo.InvariantCulture,
                $"{{\"timestamp\": {Math.Round(conv.NextAt * 1000)}, \"input_length\": {input}, \"output_length\": {output}, \"hash_ids\": [{string.Join(", ", conv.Blocks)}]}}");
            written++;
            if (--conv.TurnsLeft > 0)
            {
                // The answer joins the conversation's context.
                Extend(conv, input + output, b, ref nextId);
                conv.NextAt += (-Math.Log(1 - random.NextDouble()) * options.MeanThinkSeconds) + 1;
                pending.Enqueue(conv, conv.NextAt);
            }
        }
    }

    /// <summary>Writes <see cref="Generate"/> to <paramref name="path"/>; returns the number of records.</summary>
    public static int Write(string path, TraceGeneratorOptions options)
    {
        var lines = Generate(options).ToList();
        File.WriteAllLines(path, lines, new UTF8Encoding(false));
        return lines.Count;
    }

    /// <summary>Grows the conversation's block list to cover <paramref name="tokens"/> tokens (a partial last block keeps its id).</summary>
    private static void Extend(Conversation c, int tokens, int blockTokens, ref long nextId)
    {
        var needed = (tokens + blockTokens - 1) / blockTokens;
        while (c.Blocks.Count < needed)
        {
            c.Blocks.Add(nextId++);
        }
        c.Tokens = tokens;
    }

    private static int Geometric(Random random, double mean)
    {
        if (mean <= 0)
        {
            return 0;
        }
        var p = 1 / (mean + 1);
        return (int)Math.Floor(Math.Log(1 - random.NextDouble()) / Math.Log(1 - p));
    }
}
