using System.CommandLine;

namespace Tandem.Cli.Tests;

/// <summary>Runs the real command tree in-process with captured console output (one class: tests here never overlap).</summary>
public class CliTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            var config = new InvocationConfiguration { Output = stdout, Error = stderr };
            var exit = Program.BuildRoot().Parse(args).Invoke(config);
            return (exit, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Theory]
    [InlineData("generate", "--max-tokens")]
    [InlineData("model", "info")]
    [InlineData("model info", "--tensors")]
    [InlineData("model init", "--preset")]
    [InlineData("bench", "--request-rate")]
    public void Help_EveryCommand_DescribesItsOptions(string command, string expected)
    {
        var (exit, output, _) = Run([.. command.Split(' '), "--help"]);
        Assert.Equal(0, exit);
        Assert.Contains(expected, output);
    }

    [Fact]
    public void Generate_Stories260KGreedy_PrintsTheStory()
    {
        var (exit, output, err) = Run("generate", "--model", TestModels.Stories260K, "--temperature", "0", "--max-tokens", "20", "--threads", "1", "--verbose");
        Assert.Equal(0, exit);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", output, StringComparison.Ordinal);
        Assert.Contains("decode: 19 tokens", err);
        Assert.Contains("tokens/s", err);
    }

    [Fact]
    public void Bench_MissingUrl_FailsWithOneClearLine()
    {
        var (exit, _, err) = Run("bench", "--model", "m");
        Assert.Equal(2, exit);
        Assert.Equal("error: --url is required (the server's base URL, e.g. http://127.0.0.1:8000)", err.Trim());
    }

    [Fact]
    public void Bench_TokenIdsWithChat_FailsWithOneClearLine()
    {
        var (exit, _, err) = Run("bench", "--url", "http://127.0.0.1:1", "--model", "m", "--prompt-format", "token-ids");
        Assert.Equal(2, exit);
        Assert.Contains("--prompt-format token-ids needs --endpoint completions", err);
    }

    [Fact]
    public void Bench_BadDuration_FailsWithOneClearLine()
    {
        var (exit, _, err) = Run("bench", "--url", "http://127.0.0.1:1", "--model", "m", "--duration", "soon");
        Assert.Equal(2, exit);
        Assert.Contains("--duration must be a positive duration", err);
    }

    [Fact]
    public void Bench_UnreachableServer_ReportsConnectionErrors()
    {
        var (exit, output, _) = Run("bench", "--url", "http://127.0.0.1:1", "--model", "m", "--requests", "2", "--timeout", "5s");
        Assert.Equal(1, exit);
        Assert.Contains("connection 2", output);
    }

    [Fact]
    public void Generate_MissingModel_FailsWithOneClearLine()
    {
        var (exit, _, err) = Run("generate", "--model", "/nonexistent/model.gguf");
        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", err, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/model.gguf", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Generate_CorruptModel_FailsWithOneClearLine()
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, "bad.gguf");
        File.WriteAllBytes(path, File.ReadAllBytes(TestModels.Stories260K).AsSpan(0, 5000).ToArray());
        var (exit, _, err) = Run("generate", "--model", path);
        Assert.Equal(1, exit);
        Assert.Contains(path, err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void Generate_InvalidSampling_ExitsWithUsageError()
    {
        var (exit, _, err) = Run("generate", "--model", TestModels.Stories260K, "--temperature", "-1");
        Assert.Equal(2, exit);
        Assert.Contains("temperature", err);
    }

    [Fact]
    public void ModelInfo_Stories260K_ReportsArchitectureAndTokenizer()
    {
        var (exit, output, _) = Run("model", "info", TestModels.Stories260K);
        Assert.Equal(0, exit);
        Assert.Contains("architecture:  llama", output);
        Assert.Contains("layers:        5", output);
        Assert.Contains("heads:         8 query, 4 key/value, head dim 8", output);
        Assert.Contains("SentencePiece, 512 tokens", output);
        Assert.Contains("bos   1 <s>", output);
    }

    [Theory]
    [InlineData("gguf", "f32")]
    [InlineData("gguf", "q8_0")]
    [InlineData("safetensors", "bf16")]
    public void ModelInit_ThenInfoAndGenerate_Work(string format, string dtype)
    {
        using var dir = TestModels.CreateTempDirectory();
        var path = Path.Combine(dir.Path, format == "gguf" ? "m.gguf" : "m");
        var (exit, output, err) = Run("model", "init", "--out", path, "--preset", "tiny", "--format", format, "--dtype", dtype, "--seed", "7");
        Assert.True(exit == 0, err);
        Assert.Contains("wrote", output);
        (exit, output, err) = Run("model", "info", path, "--json");
        Assert.True(exit == 0, err);
        Assert.Contains("\"HiddenSize\": 64", output);
        (exit, _, err) = Run("generate", "--model", path, "--prompt", "hello", "--max-tokens", "8", "--ignore-eos", "--verbose");
        Assert.True(exit == 0, err);
        Assert.Contains("output tokens (8)", err);
    }

    [Fact]
    public void EngineBench_PrintTokens_PrintsThePromptIdsAndGreedyTokens()
    {
        var (exit, output, err) = Run("engine-bench", "--model", TestModels.Stories260K, "--threads", "1", "--print-tokens", "8");
        Assert.True(exit == 0, err);
        using var json = System.Text.Json.JsonDocument.Parse(output);
        var prompt = json.RootElement.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var tokens = json.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        // The ids a peer harness reproduces: 3 + ((i * 7919 + variant * 104729) mod (vocabulary - 3)), variant 1, vocabulary 512.
        Assert.Equal([387, 162, 446, 221], prompt[..4]);
        Assert.Equal(16, prompt.Length);
        Assert.Equal(8, tokens.Length);
        Assert.Equal(output, Run("engine-bench", "--model", TestModels.Stories260K, "--threads", "1", "--print-tokens", "8").Out);
    }

    [Fact]
    public void ModelInit_UnknownPreset_ListsChoices()
    {
        var (exit, _, err) = Run("model", "init", "--out", "/tmp/x.gguf", "--preset", "huge");
        Assert.Equal(2, exit);
        Assert.Contains("tiny, small, 110m", err);
    }
    [Fact]
    public void Disagg_InvalidConfig_FailsWithFileAndLine()
    {
        var file = Path.Combine(Path.GetTempPath(), $"disagg-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, "hostname: localhost\nport: 8000\ncontext_servers:\n  num_instances: 2\n  urls:\n    - \"localhost:8001\"\ngeneration_servers:\n  urls: [\"localhost:8003\"]\n");
        try
        {
            var (exit, _, err) = Run("disagg", "-c", file);
            Assert.Equal(2, exit);
            Assert.Equal($"error: {file}:4:18: 'context_servers.num_instances' is 2 but 'context_servers.urls' lists 1 servers; they must match", err.Trim());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Disagg_WithoutConfig_FailsWithOneClearLine()
    {
        var (exit, _, err) = Run("disagg");
        Assert.Equal(2, exit);
        Assert.Equal("error: -c disagg_config.yaml is required", err.Trim());
    }

    [Theory]
    [InlineData("--http-port 18001 --server-role DECODER", "error: --server-role must be CONTEXT or GENERATION, got 'DECODER'")]
    [InlineData("--server-role CONTEXT", "error: --server-role and --metadata-server-config-file need --http-port")]
    [InlineData("--http-port 18001 --metadata-server-config-file m.yml", "error: --metadata-server-config-file needs --server-role CONTEXT or GENERATION")]
    [InlineData("--remote-prefill-timeout 0", "error: --remote-prefill-timeout must be a positive number of seconds, got 0")]
    [InlineData("--kv-advertise-address 10.0.0.7", "error: --kv-advertise-address must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got '10.0.0.7'")]
    [InlineData("--kv-advertise-address 10.0.0.7:0", "error: --kv-advertise-address must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got '10.0.0.7:0'")]
    [InlineData("--kv-advertise-address 10.0.0.7:65536", "error: --kv-advertise-address must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got '10.0.0.7:65536'")]
    [InlineData("--kv-advertise-address :9200", "error: --kv-advertise-address must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got ':9200'")]
    [InlineData("--kv-advertise-address ::1:9200", "error: --kv-advertise-address must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got '::1:9200'")]
    [InlineData("--kv-advertise-address kv.example:port", "error: --kv-advertise-address must be HOST:PORT with a port in 1..65535 (an IPv6 host in brackets), got 'kv.example:port'")]
    public void Worker_InvalidServerFlags_FailBeforeLoadingTheModel(string flags, string expected)
    {
        var (exit, _, err) = Run(["worker", "--model", "/nonexistent/model.gguf", .. flags.Split(' ')]);
        Assert.Equal(2, exit);
        Assert.Equal(expected, err.Trim());
    }

    [Theory]
    [InlineData("10.0.0.7:9200")]
    [InlineData("kv.example:1")]
    [InlineData("[::1]:65535")]
    public void WorkerKvAdvertiseAddress_HostAndPort_Accepted(string value) =>
        Assert.Equal(value, Tandem.Cli.Commands.WorkerCommand.HostPort(value, "--kv-advertise-address"));
}
