using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Engine.Serving;
using Tandem.Worker;

namespace Tandem.Runtime.Grpc.Tests;

/// <summary>A real <see cref="EngineWorker"/> over stories260K behind the gRPC host: the network changes nothing.</summary>
public class EngineWorkerOverGrpcTests
{
    private static readonly string[] Texts =
    [
        "Once upon a time",
        "Tom and his dog went to the big forest to look for a treasure. They walked and walked until",
        "Hi",
    ];

    private static GenerateRequest Greedy(int[] prompt, int maxTokens, string id) => new()
    {
        RequestId = id,
        PromptTokens = prompt,
        MaxTokens = maxTokens,
        Logprobs = true,
        Sampling = SamplingParams.Greedy,
    };

    private static async Task<List<TokenOutput>> Collect(IAsyncEnumerable<TokenOutput> tokens)
    {
        var list = new List<TokenOutput>();
        await foreach (var token in tokens)
        {
            list.Add(token);
        }
        return list;
    }

    private static async Task<EngineStats> IdleAsync(EngineWorker worker)
    {
        var stats = await worker.GetStatsAsync();
        for (var i = 0; i < 200 && (stats.Running > 0 || stats.Waiting > 0 || stats.KvBlocksUsed > 0); i++)
        {
            await Task.Delay(10);
            stats = await worker.GetStatsAsync();
        }
        return stats;
    }

    [Fact]
    public async Task Generate_GreedyOverGrpc_EqualsDirectEngineWorker()
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        var engine = new ServingEngine(model.Transformer, model.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 128, EnablePrefixCaching = false });
        await using var worker = new EngineWorker(engine, new WorkerInstance { InstanceId = "w-1", Role = WorkerRole.Both, Model = "stories260K" });
        await using var host = await WorkerRpcHost.StartAsync(worker);
        using var plane = new GrpcRequestPlane();
        var remote = plane.GetClient(worker.Instance with { Endpoints = new Dictionary<string, string> { ["rpc"] = host.Url.ToString() } });

        for (var i = 0; i < Texts.Length; i++)
        {
            var prompt = model.Tokenizer.Encode(Texts[i], addBos: true).ToArray();
            var direct = await Collect(worker.GenerateAsync(Greedy(prompt, 40, $"direct-{i}"), TestContext.Current.CancellationToken));
            var overGrpc = await Collect(remote.GenerateAsync(Greedy(prompt, 40, $"grpc-{i}"), TestContext.Current.CancellationToken));

            Assert.NotEmpty(direct);
            Assert.Equal(direct.Select(t => t.TokenId), overGrpc.Select(t => t.TokenId));
            Assert.Equal(direct.Select(t => t.Logprob), overGrpc.Select(t => t.Logprob));
            Assert.Equal(direct.Select(t => t.Finish), overGrpc.Select(t => t.Finish));
            Assert.Equal(direct.Select(t => t.Index), overGrpc.Select(t => t.Index));
        }

        var stats = await remote.GetStatsAsync(TestContext.Current.CancellationToken);
        Assert.Equal(2 * Texts.Length, stats.RequestsFinished);
        Assert.Equal(2 * Texts.Length, stats.LocalPrefills);
    }

    [Fact]
    public async Task Generate_CancelledOverGrpc_FreesWorkerKvBlocks()
    {
        using var model = LoadedModel.Load(TestModels.Stories260K, threads: 1);
        var engine = new ServingEngine(model.Transformer, model.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 128, EnablePrefixCaching = false });
        await using var worker = new EngineWorker(engine, new WorkerInstance { InstanceId = "w-1", Role = WorkerRole.Both, Model = "stories260K" });
        await using var host = await WorkerRpcHost.StartAsync(worker);
        using var plane = new GrpcRequestPlane();
        var remote = plane.GetClient(worker.Instance with { Endpoints = new Dictionary<string, string> { ["rpc"] = host.Url.ToString() } });
        var prompt = model.Tokenizer.Encode(Texts[1], addBos: true).ToArray();

        var received = 0;
        await foreach (var token in remote.GenerateAsync(Greedy(prompt, 400, "long") with { IgnoreEos = true }, TestContext.Current.CancellationToken))
        {
            if (++received == 3)
            {
                break;
            }
        }

        var stats = await IdleAsync(worker);
        Assert.Equal(0, stats.KvBlocksUsed);
        Assert.Equal(0, stats.Running);
        Assert.Equal(1, stats.RequestsCancelled);
    }
}
