using Tandem.Abstractions;
using Tandem.Engine.Serving.Mocker;

namespace Tandem.Engine.Serving.Tests;

public class MockerTests
{
    private static MockerProfile Fast(double speedup = 1000) => MockerProfile.Default with { SpeedupRatio = speedup };

    private static ServingOptions Small => new() { BlockSize = 16, NumKvBlocks = 256, MaxNumSeqs = 8, MaxNumBatchedTokens = 512 };

    private static async Task<List<TokenOutput>> Run(ServingEngine engine, GenerateRequest request)
    {
        var list = new List<TokenOutput>();
        await foreach (var t in engine.SubmitAsync(request, TestContext.Current.CancellationToken))
        {
            list.Add(t);
        }
        return list;
    }

    [Fact]
    public void Profile_Default_HasTheShippedValues()
    {
        var p = MockerProfile.Default;
        Assert.Equal("h100-8b", p.Name);
        Assert.Equal(64, p.Engine.BlockSize);
        Assert.Equal(16384, p.Engine.NumKvBlocks);
        Assert.Equal(256, p.Engine.MaxNumSeqs);
        Assert.Equal(8192, p.Engine.MaxNumBatchedTokens);
        Assert.Equal(64e9, p.Timing.KvTransferBandwidth);
    }

    [Fact]
    public void Timing_MatchesTheFit()
    {
        var p = MockerProfile.Default;
        Assert.Equal(0, p.PrefillMilliseconds(0));
        Assert.Equal((4.209989e-7 * 1000 * 1000) + (1.518344e-2 * 1000) + 16.50142, p.PrefillMilliseconds(1000), 9);
        Assert.Equal(4.209989e-7 * 8192 * 8192 + (1.518344e-2 * 8192) + 16.50142, p.PrefillMilliseconds(8192), 9);
        Assert.Equal(5.74, p.DecodeMilliseconds(0), 9);
        Assert.Equal((-25.74 * 0.25) + (54.01 * 0.5) + 5.74, p.DecodeMilliseconds(0.5), 9);
        Assert.Equal(-25.74 + 54.01 + 5.74, p.DecodeMilliseconds(1), 9);
        var floor = p with { Timing = p.Timing with { DecodeMs = p.Timing.DecodeMs with { C = -100 } } };
        Assert.Equal(1.0, floor.DecodeMilliseconds(0.1));
        // 8B Llama shape: 2 × 32 layers × 8 heads × 128 × 2 bytes = 128 KiB per token.
        Assert.Equal(131072, p.Model.KvBytesPerToken);
        Assert.Equal(1000 * 131072 / 64e9, p.KvTransferSeconds(1000), 12);
    }

    [Fact]
    public void Profile_ParseRejectsBadValues()
    {
        Assert.Throws<ArgumentException>(() => MockerProfile.Parse("{\"model\":{\"vocab_size\":1}}"));
        Assert.Throws<ArgumentException>(() => MockerProfile.Parse("not json"));
        Assert.Throws<FileNotFoundException>(() => MockerProfile.Load("no-such-profile"));
        var p = MockerProfile.Parse("{\"name\":\"x\",\"engine\":{\"block_size\":32}}");
        Assert.Equal(32, p.ToServingOptions().BlockSize);
    }

    [Fact]
    public async Task Tokens_AreDeterministic_InRange_AndAvoidStops()
    {
        using var a = ServingEngine.CreateMocker(Fast(), Small);
        using var b = ServingEngine.CreateMocker(Fast(), Small);
        Assert.True(a.IsMocker);
        var prompt = Engines.Prompt(40, 1);
        var request = Engines.Greedy(prompt, 50, "req-1") with { IgnoreEos = false, StopTokenIds = [300, 301, 302] };
        var x = await Run(a, request);
        var y = await Run(b, request);
        Assert.Equal(50, x.Count);
        Assert.Equal(x.Select(t => t.TokenId), y.Select(t => t.TokenId));
        Assert.All(x, t => Assert.InRange(t.TokenId, 259, MockerProfile.Default.Model.VocabSize - 1));
        Assert.DoesNotContain(x, t => t.TokenId is 2 or 300 or 301 or 302);
        Assert.Equal(FinishReason.Length, x[^1].Finish);
        var other = await Run(a, request with { RequestId = "req-2" });
        Assert.NotEqual(x.Select(t => t.TokenId), other.Select(t => t.TokenId));
        var seeded1 = await Run(a, request with { RequestId = "s1", Sampling = SamplingParams.Greedy with { Seed = 7 } });
        var seeded2 = await Run(b, request with { RequestId = "s2", Sampling = SamplingParams.Greedy with { Seed = 7 } });
        Assert.Equal(seeded1.Select(t => t.TokenId), seeded2.Select(t => t.TokenId));
    }

    [Fact]
    public async Task PrefixHit_ReducesSimulatedPrefillTime_AndEmitsKvEvents()
    {
        using var engine = ServingEngine.CreateMocker(Fast(), Small);
        var compute = (MockerStepCompute)engine.Compute;
        var prompt = Engines.Prompt(200, 2);
        var first = await Run(engine, Engines.Greedy(prompt, 1, "a"));
        var cold = compute.LastStep;
        Assert.Equal(0, first[0].CachedPromptTokens);
        Assert.Equal(200, cold.NewPromptTokens);
        var second = await Run(engine, Engines.Greedy(prompt, 1, "b"));
        var warm = compute.LastStep;
        Assert.Equal(192, second[0].CachedPromptTokens); // 12 full blocks of 16; the last token is always computed
        Assert.Equal(8, warm.NewPromptTokens);
        Assert.True(warm.Milliseconds < cold.Milliseconds);
        Assert.Equal(MockerProfile.Default.PrefillMilliseconds(200) / 1000, cold.Milliseconds, 9);
        Assert.Equal(MockerProfile.Default.PrefillMilliseconds(8) / 1000, warm.Milliseconds, 9);

        var stored = new List<ulong>();
        while (engine.Blocks.TryReadEvent(out var e))
        {
            if (e is KvBlocksStored s)
            {
                stored.AddRange(s.Blocks.Select(b => b.BlockHash));
            }
        }
        Assert.Equal(BlockHashing.SequenceHashes(prompt, 16), stored);
        var stats = engine.GetStats();
        Assert.Equal(0.48, stats.PrefixHitRate, 2);
    }

    [Fact]
    public async Task Steps_TakeTheSimulatedTime_ScaledBySpeedup()
    {
        using var engine = ServingEngine.CreateMocker(Fast(speedup: 10), Small);
        var compute = (MockerStepCompute)engine.Compute;
        var started = System.Diagnostics.Stopwatch.StartNew();
        await Run(engine, Engines.Greedy(Engines.Prompt(100, 3), 20, "t"));
        var wall = started.Elapsed;
        // 1 prefill step (~1.8 ms at 10x) + 19 decode steps (~0.6 ms each at 10x, floor 1 ms / 10).
        var expected = compute.SimulatedTime;
        Assert.Equal(1, compute.PrefillSteps);
        Assert.Equal(19, compute.DecodeSteps);
        Assert.InRange(expected.TotalMilliseconds, 10, 20);
        Assert.True(wall >= expected * 0.9, $"wall {wall} < simulated {expected}");
    }

    [Fact]
    public void KvTransfer_IsNotSupported()
    {
        using var engine = ServingEngine.CreateMocker(Fast(), Small);
        var lease = engine.TryReserveKv(Engines.Prompt(40, 4))!;
        Assert.Throws<NotSupportedException>(() => engine.ExportKv(lease, 0, 0, 1, new float[1], new float[1]));
        lease.Dispose();
    }
}
