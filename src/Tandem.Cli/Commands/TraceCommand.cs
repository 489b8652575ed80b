using System.CommandLine;
using Tandem.Bench.Workloads;

namespace Tandem.Cli.Commands;

/// <summary>`tandem trace generate`: a synthetic Mooncake-format trace with multi-turn conversations and shared system prompts.</summary>
internal static class TraceCommand
{
    public static Command Create()
    {
        var output = CliOptions.Create("--output", "Trace file to write (JSONL)", "trace.jsonl", "-o");
        var requests = CliOptions.Create("--requests", "Records (turns) to write", 1000);
        var blockTokens = CliOptions.Create("--block-tokens", "Tokens per hash id (Mooncake: 512)", 512);
        var rate = CliOptions.Create("--conversation-rate", "New conversations per second (Poisson)", 2.0);
        var systems = CliOptions.Create("--system-prompts", "Distinct shared system prompts (Zipf popularity)", 10);
        var sysMin = CliOptions.Create("--system-prompt-min-blocks", "Shortest system prompt in blocks", 2);
        var sysMax = CliOptions.Create("--system-prompt-max-blocks", "Longest system prompt in blocks", 8);
        var turns = CliOptions.Create("--mean-turns", "Mean turns per conversation", 4.0);
        var userMin = CliOptions.Create("--user-min-tokens", "Shortest new user message", 64);
        var userMax = CliOptions.Create("--user-max-tokens", "Longest new user message", 1024);
        var outMin = CliOptions.Create("--output-min-tokens", "Shortest answer", 32);
        var outMax = CliOptions.Create("--output-max-tokens", "Longest answer", 384);
        var think = CliOptions.Create("--mean-think-seconds", "Mean pause between turns of a conversation", 10.0);
        var maxInput = CliOptions.Create("--max-input-tokens", "Longest prompt (a conversation ends before exceeding it)", 32768);
        var seed = CliOptions.Create("--seed", "Random seed", 0);
        var generate = new Command("generate", "Write a synthetic Mooncake-format trace (timestamp, input_length, output_length, hash_ids) with realistic prefix sharing")
        {
            output, requests, blockTokens, rate, systems, sysMin, sysMax, turns, userMin, userMax, outMin, outMax, think, maxInput, seed,
        };
        generate.SetAction(parse => CommandRunner.Run(() =>
        {
            var options = new TraceGeneratorOptions
            {
                Requests = parse.GetValue(requests),
                BlockTokens = parse.GetValue(blockTokens),
                ConversationRate = parse.GetValue(rate),
                SystemPrompts = parse.GetValue(systems),
                SystemPromptMinBlocks = parse.GetValue(sysMin),
                SystemPromptMaxBlocks = parse.GetValue(sysMax),
                MeanTurns = parse.GetValue(turns),
                UserMinTokens = parse.GetValue(userMin),
                UserMaxTokens = parse.GetValue(userMax),
                OutputMinTokens = parse.GetValue(outMin),
                OutputMaxTokens = parse.GetValue(outMax),
                MeanThinkSeconds = parse.GetValue(think),
                MaxInputTokens = parse.GetValue(maxInput),
                Seed = parse.GetValue(seed),
            };
            var path = parse.GetValue(output)!;
            var n = TraceGenerator.Write(path, options);
            Console.Error.WriteLine($"tandem: wrote {n} records to {path}");
            return 0;
        }));
        return new Command("trace", "Request traces for `tandem bench --trace`") { generate };
    }
}
