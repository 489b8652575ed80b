using System.CommandLine;
using System.Text.Json;
using Tandem.Engine.Models;

namespace Tandem.Cli.Commands;

/// <summary>`tandem model info` and `tandem model init`.</summary>
internal static class ModelCommands
{
    public static Command Create() => new("model", "Inspect model files or write random-weight test models")
    {
        Info(),
        Init(),
    };

    private static Command Info()
    {
        var path = new Argument<string>("path") { Description = "A .gguf file or a Hugging Face model directory" };
        var tensors = CliOptions.Create("--tensors", "List every tensor with its type and shape", false);
        var json = CliOptions.Create("--json", "Print the summary as JSON", false);
        var command = new Command("info", "Print a model's architecture, sizes, tensor types, tokenizer and special tokens") { path, tensors, json };
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            using var model = LoadedModel.Load(parse.GetValue(path)!, threads: 1);
            var summary = ModelSummary.Of(model);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(summary, ModelSummary.JsonOptions));
                return 0;
            }
            summary.Print(Console.Out);
            if (parse.GetValue(tensors))
            {
                Console.WriteLine();
                Console.WriteLine("tensors:");
                foreach (var t in model.Artifact.Weights.All.OrderBy(t => t.Name, StringComparer.Ordinal))
                {
                    Console.WriteLine($"  {t.Name,-32} {t.Type,-5} [{string.Join(", ", t.Shape)}]");
                }
            }
            return 0;
        }));
        return command;
    }

    private static Command Init()
    {
        var output = CliOptions.Create("--out", "Output: a .gguf file (gguf) or a directory (safetensors)", "", "-o");
        var preset = CliOptions.Create("--preset", "Model size: tiny, small or 110m", "tiny");
        var format = CliOptions.Create("--format", "File format: gguf or safetensors (Hugging Face directory)", "gguf");
        var dtype = CliOptions.Create("--dtype", "Weight type: f32, f16, bf16 or q8_0 (q8_0: gguf only)", "f32");
        var seed = CliOptions.Create("--seed", "Random seed (same seed, same weights)", 1UL);
        var vocab = CliOptions.Create("--vocab-from", "Take the tokenizer of this GGUF model (e.g. stories260K.gguf) instead of the built-in 512-token vocabulary", "");
        var command = new Command("init", "Write a deterministic random-weight llama model in a real file format (for tests and benchmarks)")
        {
            output, preset, format, dtype, seed, vocab,
        };
        command.SetAction(parse => CommandRunner.Run(() =>
        {
            var outPath = parse.GetValue(output);
            if (string.IsNullOrEmpty(outPath))
            {
                throw new ArgumentException("--out is required");
            }
            var options = new ModelInitOptions
            {
                Preset = ModelPresets.Get(parse.GetValue(preset)!),
                Format = parse.GetValue(format)!,
                WeightType = ModelInitOptions.ParseWeightType(parse.GetValue(dtype)!),
                Seed = parse.GetValue(seed),
                VocabularyFrom = parse.GetValue(vocab) is { Length: > 0 } v ? v : null,
            };
            var written = ModelInitializer.Write(outPath, options);
            Console.WriteLine($"wrote {written} ({options.Preset.Name}, {options.Format}, {options.WeightType})");
            return 0;
        }));
        return command;
    }
}

/// <summary>What `model info` prints, also as JSON.</summary>
internal sealed record ModelSummary(
    string Name,
    string Path,
    string Format,
    ModelConfig Config,
    long Parameters,
    long WeightBytes,
    IReadOnlyDictionary<string, int> TensorTypes,
    string Tokenizer,
    int TokenizerVocabulary,
    IReadOnlyDictionary<string, string> SpecialTokens,
    bool ChatTemplate)
{
    public static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static ModelSummary Of(LoadedModel model)
    {
        var a = model.Artifact;
        var tok = model.Tokenizer;
        var specials = new Dictionary<string, string>();
        if (tok.BosId >= 0)
        {
            specials["bos"] = $"{tok.BosId} {tok.TokenText(tok.BosId)}";
        }
        if (tok.EosId >= 0)
        {
            specials["eos"] = $"{tok.EosId} {tok.TokenText(tok.EosId)}";
        }
        specials["stop"] = string.Join(", ", tok.StopTokenIds.Select(id => $"{id} {tok.TokenText(id)}"));
        return new ModelSummary(
            a.Name,
            a.Path,
            a.Format,
            a.Config,
            a.Weights.All.Sum(t => t.ElementCount),
            a.Weights.TotalBytes,
            a.Weights.All.GroupBy(t => t.Type).OrderBy(g => g.Key).ToDictionary(g => g.Key.ToString(), g => g.Count()),
            tok.Kind.ToString(),
            tok.VocabSize,
            specials,
            a.ChatTemplate is not null);
    }

    public void Print(TextWriter w)
    {
        var c = Config;
        w.WriteLine($"name:          {Name}");
        w.WriteLine($"path:          {Path}");
        w.WriteLine($"format:        {Format}");
        w.WriteLine($"architecture:  {c.Architecture}");
        w.WriteLine($"parameters:    {Parameters:N0} ({WeightBytes / (1024.0 * 1024.0):F1} MiB of weights)");
        w.WriteLine($"tensor types:  {string.Join(", ", TensorTypes.Select(kv => $"{kv.Key} × {kv.Value}"))}");
        w.WriteLine($"hidden size:   {c.HiddenSize}");
        w.WriteLine($"layers:        {c.NumLayers}");
        w.WriteLine($"heads:         {c.NumHeads} query, {c.NumKvHeads} key/value, head dim {c.HeadDim}");
        w.WriteLine($"ffn size:      {c.IntermediateSize}");
        w.WriteLine($"vocabulary:    {c.VocabSize}");
        w.WriteLine($"context:       {c.ContextLength}");
        w.WriteLine($"rope:          theta {c.RopeTheta}, {c.RopeStyle}{(c.RopeScaling is { } s ? $", scaling {s.Type} ×{s.Factor}" : "")}");
        w.WriteLine($"rms norm eps:  {c.RmsNormEps}");
        w.WriteLine($"features:      tied embeddings {Yes(c.TiedEmbeddings)}, qkv bias {Yes(c.AttentionBias)}, q/k norm {Yes(c.QkNorm)}");
        w.WriteLine($"tokenizer:     {Tokenizer}, {TokenizerVocabulary} tokens");
        foreach (var (k, v) in SpecialTokens)
        {
            w.WriteLine($"  {k,-5} {v}");
        }
        w.WriteLine($"chat template: {Yes(ChatTemplate)}");
    }

    private static string Yes(bool b) => b ? "yes" : "no";
}
