using System.CommandLine;
using Tandem.Abstractions;
using Tandem.Engine.Inference;
using Tandem.Engine.Models;

namespace Tandem.Cli.Commands;

/// <summary>`tandem generate`: load a model and print a completion of one prompt.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CliOptions.Create<string>("--model", "Model path: a .gguf file or a Hugging Face model directory", "", "-m");
        var prompt = CliOptions.Create("--prompt", "Prompt text (empty: start from BOS)", "", "-p");
        var maxTokens = CliOptions.Create("--max-tokens", "Maximum tokens to generate", 256, "-n");
        var temperature = CliOptions.Optional<float>("--temperature", "Sampling temperature; 0 = greedy (default: the model's generation_config, else 0.8)", "-t");
        var topK = CliOptions.Optional<int>("--top-k", "Keep the k most likely tokens (0 = off)");
        var topP = CliOptions.Optional<float>("--top-p", "Nucleus sampling probability mass (1 = off)");
        var minP = CliOptions.Create("--min-p", "Drop tokens below min_p × the top probability (0 = off)", 0f);
        var repetition = CliOptions.Optional<float>("--repetition-penalty", "Penalty on tokens already in prompt or output (1 = off)");
        var presence = CliOptions.Create("--presence-penalty", "OpenAI presence penalty over generated tokens", 0f);
        var frequency = CliOptions.Create("--frequency-penalty", "OpenAI frequency penalty over generated tokens", 0f);
        var seed = CliOptions.Optional<ulong>("--seed", "Random seed for reproducible sampling", "-s");
        var stopTokens = new Option<int[]>("--stop-token-id") { Description = "Extra token id that ends generation (repeatable)", AllowMultipleArgumentsPerToken = true };
        var ignoreEos = CliOptions.Create("--ignore-eos", "Do not stop at end-of-sequence tokens", false);
        var threads = CliOptions.Create("--threads", "Compute threads (0 = one per core)", 0);
        var kernels = CliOptions.Create("--kernels", "Kernel implementation: optimized or reference", "optimized");
        var verbose = CliOptions.Create("--verbose", "Print prompt/output token ids and prefill/decode timing to stderr", false, "-v");

        var command = new Command("generate", "Generate text from a prompt with the built-in CPU engine")
        {
            model, prompt, maxTokens, temperature, topK, topP, minP, repetition, presence, frequency, seed, stopTokens, ignoreEos, threads, kernels, verbose,
        };
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var path = parse.GetValue(model);
            if (string.IsNullOrEmpty(path))
            {
                throw new ArgumentException("--model is required (a .gguf file or a Hugging Face model directory); 'tandem model init' writes a small one");
            }
            using var loaded = LoadedModel.Load(path, parse.GetValue(kernels)!, parse.GetValue(threads));
            var defaults = loaded.Artifact.GenerationDefaults;
            var sampling = new SamplingParams
            {
                Temperature = parse.GetValue(temperature) ?? defaults.Temperature ?? 0.8f,
                TopK = parse.GetValue(topK) ?? defaults.TopK ?? 0,
                TopP = parse.GetValue(topP) ?? defaults.TopP ?? 1f,
                MinP = parse.GetValue(minP),
                RepetitionPenalty = parse.GetValue(repetition) ?? defaults.RepetitionPenalty ?? 1f,
                PresencePenalty = parse.GetValue(presence),
                FrequencyPenalty = parse.GetValue(frequency),
                Seed = parse.GetValue(seed),
            };
            var tokenizer = loaded.Tokenizer;
            var text = parse.GetValue(prompt) ?? "";
            var ids = tokenizer.Encode(text, tokenizer.AddBos || text.Length == 0);
            if (ids.Length == 0)
            {
                throw new ArgumentException("the prompt is empty and the tokenizer has no BOS token to start from");
            }
            var options = new GenerationOptions
            {
                MaxTokens = parse.GetValue(maxTokens),
                Sampling = sampling,
                StopTokenIds = [.. defaults.EosTokenIds, .. parse.GetValue(stopTokens) ?? []],
                IgnoreEos = parse.GetValue(ignoreEos),
            };
            using var cts = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                cts.Cancel();
            };
            var generator = new TextGenerator(loaded.Transformer, tokenizer);
            var stdout = Console.Out;
            var result = generator.Generate(ids, options, (_, piece) =>
            {
                stdout.Write(piece);
                stdout.Flush();
            }, cts.Token);
            stdout.WriteLine();
            if (parse.GetValue(verbose))
            {
                var err = Console.Error;
                err.WriteLine($"model: {loaded.Artifact.Name} ({loaded.Artifact.Format}, {loaded.Config.Architecture}), kernels: {loaded.Transformer.Kernels.Name}");
                err.WriteLine($"sampling: {sampling}");
                err.WriteLine($"prompt tokens ({result.PromptTokens.Count}): {string.Join(' ', result.PromptTokens)}");
                err.WriteLine($"output tokens ({result.OutputTokens.Count}): {string.Join(' ', result.OutputTokens)}");
                err.WriteLine($"finish reason: {result.FinishReason.ToString().ToLowerInvariant()}");
                err.WriteLine($"prefill: {result.PromptTokens.Count} tokens in {result.PrefillTime.TotalMilliseconds:F1} ms ({result.PrefillTokensPerSecond:F1} tokens/s)");
                err.WriteLine($"decode: {Math.Max(result.OutputTokens.Count - 1, 0)} tokens in {result.DecodeTime.TotalMilliseconds:F1} ms ({result.DecodeTokensPerSecond:F1} tokens/s)");
                var weightBytes = loaded.Transformer.WeightBytesPerToken;
                err.WriteLine($"decode weight traffic: {weightBytes / 1e6:F1} MB per token → {weightBytes * result.DecodeTokensPerSecond / 1e9:F2} GB/s");
            }
            return 0;
        }));
        return command;
    }
}
