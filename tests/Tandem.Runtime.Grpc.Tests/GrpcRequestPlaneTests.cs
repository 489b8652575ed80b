using System.Net;
using System.Net.Sockets;
using Tandem.Abstractions;

namespace Tandem.Runtime.Grpc.Tests;

public class GrpcRequestPlaneTests
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(5);

    private static GenerateRequest Request(string id = "r1") => new()
    {
        RequestId = id,
        PromptTokens = [1, 2, 3, 40000],
        MaxTokens = 17,
        MinTokens = 3,
        Sampling = new SamplingParams
        {
            Temperature = 0.7f,
            TopK = 40,
            TopP = 0.9f,
            MinP = 0.05f,
            PresencePenalty = 0.5f,
            FrequencyPenalty = -0.25f,
            RepetitionPenalty = 1.1f,
            Seed = ulong.MaxValue - 7,
        },
        StopTokenIds = [2, 99],
        IgnoreEos = true,
        Logprobs = true,
        CacheSalt = "tenant-a",
        RemoteKv = new RemoteKv("tcp://10.0.0.1:7000", 1234567890123, 5, 42, -0.125f, "prefill-7"),
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

    [Fact]
    public async Task Generate_TokensStream_ArriveInOrderWithAllFieldsEqual()
    {
        await using var rpc = await RpcFixture.StartAsync();
        var expected = Enumerable.Range(0, 50)
            .Select(i => new TokenOutput(i, 1000 + i, i % 3 == 0 ? float.NaN : -0.01f * i, null, 7, TimeSpan.FromTicks(123457L * i)))
            .Append(new TokenOutput(50, 2, -1.5f, FinishReason.Stop, 7, TimeSpan.FromMilliseconds(999)))
            .ToList();
        rpc.Worker.Tokens = expected;

        var request = Request();
        var actual = await Collect(rpc.Client.GenerateAsync(request, TestContext.Current.CancellationToken));

        Assert.Equal(expected, actual);
        var seen = rpc.Worker.LastRequest!;
        Assert.Equal(request.RequestId, seen.RequestId);
        Assert.Equal(request.PromptTokens, seen.PromptTokens);
        Assert.Equal(request.MaxTokens, seen.MaxTokens);
        Assert.Equal(request.MinTokens, seen.MinTokens);
        Assert.Equal(request.Sampling, seen.Sampling);
        Assert.Equal(request.StopTokenIds, seen.StopTokenIds);
        Assert.Equal(request.IgnoreEos, seen.IgnoreEos);
        Assert.Equal(request.Logprobs, seen.Logprobs);
        Assert.Equal(request.CacheSalt, seen.CacheSalt);
        Assert.Equal(request.RemoteKv, seen.RemoteKv);
    }

    [Fact]
    public async Task Generate_DefaultRequest_KeepsNullsAndGreedy()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.Tokens = [new TokenOutput(0, 5, float.NaN, FinishReason.Length, 0, TimeSpan.Zero)];
        var request = new GenerateRequest { RequestId = "plain", PromptTokens = [1] };

        var tokens = await Collect(rpc.Client.GenerateAsync(request, TestContext.Current.CancellationToken));

        Assert.Single(tokens);
        var seen = rpc.Worker.LastRequest!;
        Assert.Null(seen.CacheSalt);
        Assert.Null(seen.RemoteKv);
        Assert.Null(seen.Sampling.Seed);
        Assert.Equal(SamplingParams.Greedy, seen.Sampling);
        Assert.Empty(seen.StopTokenIds);
    }

    public static TheoryData<string, bool> Errors() => new()
    {
        { "invalid", false }, { "invalid", true },
        { "overloaded", false }, { "overloaded", true },
        { "unavailable", false }, { "unavailable", true },
        { "kv", false }, { "kv", true },
        { "unsupported", false }, { "unsupported", true },
    };

    private static (Exception Thrown, Type Expected) Error(string kind) => kind switch
    {
        "invalid" => (new InvalidRequestException("prompt is longer than the context (300 > 256)"), typeof(InvalidRequestException)),
        "overloaded" => (new EngineOverloadedException("admission queue is full (64 waiting)"), typeof(EngineOverloadedException)),
        "unavailable" => (new EngineUnavailableException("engine stopped"), typeof(EngineUnavailableException)),
        "kv" => (new KvTransferException("KV layouts differ: a vs b"), typeof(KvTransferException)),
        "unsupported" => (new NotSupportedException("no context-only prefills here"), typeof(NotSupportedException)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public async Task Generate_WorkerThrows_ClientThrowsSameTypeAndMessage(string kind, bool onFirstToken)
    {
        await using var rpc = await RpcFixture.StartAsync();
        var (thrown, expected) = Error(kind);
        if (onFirstToken)
        {
            rpc.Worker.ThrowOnFirstToken = thrown;
        }
        else
        {
            rpc.Worker.ThrowOnCall = thrown;
        }

        var e = await Assert.ThrowsAnyAsync<Exception>(() => Collect(rpc.Client.GenerateAsync(Request(), TestContext.Current.CancellationToken)));

        Assert.IsType(expected, e);
        Assert.Equal(thrown.Message, e.Message);
    }

    [Fact]
    public async Task Generate_EnumerationAbandonedMidStream_CancelsWorkerGeneration()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.Tokens = [.. Enumerable.Range(0, 3).Select(i => new TokenOutput(i, i, float.NaN, null, 0, TimeSpan.Zero))];
        rpc.Worker.HangAfterTokens = true;

        var received = 0;
        await foreach (var token in rpc.Client.GenerateAsync(Request(), TestContext.Current.CancellationToken))
        {
            if (++received == 2)
            {
                break;
            }
        }

        await rpc.Worker.GenerateCancelled.Task.WaitAsync(Short, TestContext.Current.CancellationToken);
        for (var i = 0; i < 100 && rpc.Host.Service.InFlight > 0; i++)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.Equal(0, rpc.Host.Service.InFlight);
    }

    [Fact]
    public async Task Generate_TokenCancelled_ThrowsOperationCanceledAndCancelsWorker()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.Tokens = [new TokenOutput(0, 1, float.NaN, null, 0, TimeSpan.Zero)];
        rpc.Worker.HangAfterTokens = true;
        using var cts = new CancellationTokenSource();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var token in rpc.Client.GenerateAsync(Request(), cts.Token))
            {
                await cts.CancelAsync();
            }
        });

        await rpc.Worker.GenerateCancelled.Task.WaitAsync(Short, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Generate_DeadlineExceeded_ThrowsWorkerDeadlineExceeded()
    {
        // WorkerDeadlineExceededException is an EngineUnavailableException: the frontend treats a timed-out worker as lost.
        await using var rpc = await RpcFixture.StartAsync(new GrpcWorkerClientOptions { GenerateDeadline = TimeSpan.FromMilliseconds(300) });
        rpc.Worker.HangAfterTokens = true;

        var e = await Assert.ThrowsAsync<WorkerDeadlineExceededException>(() => Collect(rpc.Client.GenerateAsync(Request(), TestContext.Current.CancellationToken)));

        Assert.IsAssignableFrom<EngineUnavailableException>(e);
        await rpc.Worker.GenerateCancelled.Task.WaitAsync(Short, TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Generate_HostStopped_ThrowsEngineUnavailable()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.Tokens = [new TokenOutput(0, 1, float.NaN, FinishReason.Stop, 0, TimeSpan.Zero)];
        var client = rpc.Client;
        Assert.Single(await Collect(client.GenerateAsync(Request(), TestContext.Current.CancellationToken)));

        await rpc.Host.DisposeAsync();

        await Assert.ThrowsAsync<EngineUnavailableException>(() => Collect(client.GenerateAsync(Request(), TestContext.Current.CancellationToken)));
        await Assert.ThrowsAsync<EngineUnavailableException>(async () => await client.GetStatsAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Generate_HostStoppedMidStream_ThrowsEngineUnavailable()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.Tokens = [new TokenOutput(0, 1, float.NaN, null, 0, TimeSpan.Zero)];
        rpc.Worker.HangAfterTokens = true;

        await Assert.ThrowsAsync<EngineUnavailableException>(async () =>
        {
            await foreach (var token in rpc.Client.GenerateAsync(Request(), TestContext.Current.CancellationToken))
            {
                await rpc.Host.DisposeAsync();
            }
        });
        Assert.True(rpc.Worker.GenerateCancelled.Task.IsCompleted);
    }

    [Fact]
    public async Task Generate_NothingListening_ThrowsEngineUnavailable()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var plane = new GrpcRequestPlane();
        var instance = new WorkerInstance
        {
            InstanceId = "gone",
            Role = WorkerRole.Both,
            Model = "fake",
            Endpoints = new Dictionary<string, string> { ["rpc"] = $"127.0.0.1:{port}" },
        };

        await Assert.ThrowsAsync<EngineUnavailableException>(() => Collect(plane.GetClient(instance).GenerateAsync(Request(), TestContext.Current.CancellationToken)));
    }

    [Fact]
    public void GetClient_NoRpcEndpoint_ThrowsEngineUnavailable()
    {
        using var plane = new GrpcRequestPlane();
        var instance = new WorkerInstance { InstanceId = "w", Role = WorkerRole.Both, Model = "fake" };

        var e = Assert.Throws<EngineUnavailableException>(() => plane.GetClient(instance));
        Assert.Contains("rpc", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetClient_SameEndpoint_ReusesOneChannel()
    {
        await using var rpc = await RpcFixture.StartAsync();
        var instance = rpc.Instance;
        var other = instance with { InstanceId = "fake-2" };
        var withoutScheme = instance with { Endpoints = new Dictionary<string, string> { ["rpc"] = $"{rpc.Host.Url.Host}:{rpc.Host.Url.Port}" } };

        var first = rpc.Plane.GetClient(instance);
        Assert.Same(first, rpc.Plane.GetClient(instance));
        Assert.Equal("fake-2", rpc.Plane.GetClient(other).Instance.InstanceId);
        rpc.Plane.GetClient(withoutScheme);

        Assert.Equal(1, rpc.Plane.ChannelCount);
        Assert.Equal(0, (await first.GetStatsAsync(TestContext.Current.CancellationToken)).Running);
    }

    [Fact]
    public async Task Prefill_WithKv_RoundTripsAllFields()
    {
        await using var rpc = await RpcFixture.StartAsync();
        var handle = new PrefillHandle(
            new TokenOutput(0, 321, -0.75f, null, 16, TimeSpan.FromTicks(98765)),
            new RemoteKv("tcp://127.0.0.1:9000", long.MaxValue - 3, 9, 321, -0.75f, "fake-1"));
        rpc.Worker.OnPrefill = (_, _) => Task.FromResult(handle);

        var request = Request();
        var result = await rpc.Client.PrefillAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(handle, result);
        Assert.Equal(request.PromptTokens, rpc.Worker.LastRequest!.PromptTokens);
    }

    [Fact]
    public async Task Prefill_EndedWithFirstToken_ReturnsNoKv()
    {
        await using var rpc = await RpcFixture.StartAsync();
        var handle = new PrefillHandle(new TokenOutput(0, 2, float.NaN, FinishReason.Stop, 0, TimeSpan.FromMilliseconds(3)), null);
        rpc.Worker.OnPrefill = (_, _) => Task.FromResult(handle);

        var result = await rpc.Client.PrefillAsync(Request(), TestContext.Current.CancellationToken);

        Assert.Equal(handle.FirstToken, result.FirstToken);
        Assert.Null(result.Kv);
    }

    [Fact]
    public async Task Prefill_NotServed_ThrowsNotSupported()
    {
        await using var rpc = await RpcFixture.StartAsync();

        var e = await Assert.ThrowsAsync<NotSupportedException>(() => rpc.Client.PrefillAsync(Request(), TestContext.Current.CancellationToken));
        Assert.Contains("context-only", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prefill_KvTransferFails_ThrowsKvTransferException()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.OnPrefill = (_, _) => throw new KvTransferException("lease 5 expired");

        var e = await Assert.ThrowsAsync<KvTransferException>(() => rpc.Client.PrefillAsync(Request(), TestContext.Current.CancellationToken));
        Assert.Equal("lease 5 expired", e.Message);
    }

    [Fact]
    public async Task ReleaseKv_Handle_ReachesWorker()
    {
        await using var rpc = await RpcFixture.StartAsync();

        await rpc.Client.ReleaseKvAsync(long.MinValue + 1, TestContext.Current.CancellationToken);
        await rpc.Client.ReleaseKvAsync(77, TestContext.Current.CancellationToken);

        Assert.Equal([long.MinValue + 1, 77], rpc.Worker.Released);
    }

    [Fact]
    public async Task GetStats_RoundTrip_AllFieldsEqual()
    {
        await using var rpc = await RpcFixture.StartAsync();
        var stats = new EngineStats
        {
            Running = 1,
            Waiting = 2,
            KvBlocksTotal = 3,
            KvBlocksUsed = 4,
            KvBlocksCached = 5,
            PrefixQueriedTokens = 6,
            PrefixHitTokens = 7,
            Preemptions = 8,
            RequestsFinished = 9,
            RequestsCancelled = 10,
            RequestsRejected = 11,
            Steps = 12,
            PromptTokensComputed = 13,
            TokensGenerated = long.MaxValue,
            RemotePrefills = 15,
            LocalPrefills = 16,
            PrefillFallbacks = new Dictionary<string, long> { ["timeout"] = 17, ["no_capacity"] = 18 },
        };
        rpc.Worker.Stats = stats;

        var actual = await rpc.Client.GetStatsAsync(TestContext.Current.CancellationToken);

        Assert.Equal(stats with { PrefillFallbacks = actual.PrefillFallbacks }, actual);
        Assert.Equal(stats.PrefillFallbacks.OrderBy(p => p.Key), actual.PrefillFallbacks.OrderBy(p => p.Key));
    }

    [Fact]
    public async Task Drain_WithDelegate_CallsItAndRefusesNewRequests()
    {
        TimeSpan? asked = null;
        await using var rpc = await RpcFixture.StartAsync(drain: (timeout, _) =>
        {
            asked = timeout;
            return Task.FromResult(true);
        });
        var client = rpc.Client;
        Assert.True((await client.HealthAsync(TestContext.Current.CancellationToken)).Serving);

        var completed = await client.DrainAsync(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);

        Assert.True(completed);
        Assert.Equal(TimeSpan.FromSeconds(3), asked);
        var health = await client.HealthAsync(TestContext.Current.CancellationToken);
        Assert.Equal(new WorkerHealth("fake-1", false, true, 0), health);
        var e = await Assert.ThrowsAsync<EngineUnavailableException>(() => Collect(client.GenerateAsync(Request(), TestContext.Current.CancellationToken)));
        Assert.Contains("draining", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Drain_WithoutDelegate_WaitsForInFlightUntilTimeout()
    {
        await using var rpc = await RpcFixture.StartAsync();
        rpc.Worker.Tokens = [new TokenOutput(0, 1, float.NaN, null, 0, TimeSpan.Zero)];
        rpc.Worker.HangAfterTokens = true;
        var client = rpc.Client;
        await using var stream = client.GenerateAsync(Request(), TestContext.Current.CancellationToken).GetAsyncEnumerator(TestContext.Current.CancellationToken);
        Assert.True(await stream.MoveNextAsync());

        Assert.False(await client.DrainAsync(TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Health_Serving_ReportsInstance()
    {
        await using var rpc = await RpcFixture.StartAsync();

        var health = await rpc.Client.HealthAsync(TestContext.Current.CancellationToken);

        Assert.Equal(new WorkerHealth("fake-1", true, false, 0), health);
    }
}
