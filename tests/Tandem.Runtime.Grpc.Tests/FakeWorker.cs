using System.Runtime.CompilerServices;
using Tandem.Abstractions;

namespace Tandem.Runtime.Grpc.Tests;

/// <summary>A scripted worker: streams given tokens, throws given errors, records what reached it.</summary>
internal sealed class FakeWorker : IWorkerClient
{
    public WorkerInstance Instance { get; } = new() { InstanceId = "fake-1", Role = WorkerRole.Both, Model = "fake" };

    public IReadOnlyList<TokenOutput> Tokens { get; set; } = [];

    /// <summary>Thrown by the GenerateAsync call itself (before any enumeration).</summary>
    public Exception? ThrowOnCall { get; set; }

    /// <summary>Thrown by the first MoveNextAsync.</summary>
    public Exception? ThrowOnFirstToken { get; set; }

    /// <summary>After the scripted tokens, wait until cancelled instead of ending.</summary>
    public bool HangAfterTokens { get; set; }

    public GenerateRequest? LastRequest { get; private set; }

    /// <summary>Completes when a generation observed its token cancelled.</summary>
    public TaskCompletionSource GenerateCancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Func<GenerateRequest, CancellationToken, Task<PrefillHandle>>? OnPrefill { get; set; }

    public List<long> Released { get; } = [];

    public EngineStats Stats { get; set; } = new();

    public IAsyncEnumerable<TokenOutput> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        LastRequest = request;
        if (ThrowOnCall is not null)
        {
            throw ThrowOnCall;
        }
        return Stream(cancellationToken);
    }

    private async IAsyncEnumerable<TokenOutput> Stream([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(() => GenerateCancelled.TrySetResult());
        await Task.Yield();
        if (ThrowOnFirstToken is not null)
        {
            throw ThrowOnFirstToken;
        }
        foreach (var token in Tokens)
        {
            yield return token;
        }
        if (HangAfterTokens)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
    }

    public ValueTask<EngineStats> GetStatsAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(Stats);

    public Task<PrefillHandle> PrefillAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        LastRequest = request;
        return OnPrefill is null
            ? throw new NotSupportedException($"worker {Instance.InstanceId} does not serve context-only prefills")
            : OnPrefill(request, cancellationToken);
    }

    public ValueTask ReleaseKvAsync(long handle, CancellationToken cancellationToken = default)
    {
        lock (Released)
        {
            Released.Add(handle);
        }
        return ValueTask.CompletedTask;
    }
}

/// <summary>A fake worker behind a real <see cref="WorkerRpcHost"/> on a loopback port, and a client plane to it.</summary>
internal sealed class RpcFixture : IAsyncDisposable
{
    private RpcFixture(FakeWorker worker, WorkerRpcHost host, GrpcRequestPlane plane)
    {
        Worker = worker;
        Host = host;
        Plane = plane;
    }

    public FakeWorker Worker { get; }
    public WorkerRpcHost Host { get; }
    public GrpcRequestPlane Plane { get; }

    /// <summary>The instance as discovery would list it: the fake's identity with the host's URL as its rpc endpoint.</summary>
    public WorkerInstance Instance => Worker.Instance with
    {
        Endpoints = new Dictionary<string, string> { ["rpc"] = Host.Url.ToString() },
    };

    public GrpcWorkerClient Client => Plane.GetGrpcClient(Instance);

    public static async Task<RpcFixture> StartAsync(GrpcWorkerClientOptions? options = null, WorkerDrainHandler? drain = null)
    {
        var worker = new FakeWorker();
        var host = await WorkerRpcHost.StartAsync(worker, new WorkerRpcHostOptions { Port = 0 }, drain);
        return new RpcFixture(worker, host, new GrpcRequestPlane(options));
    }

    public async ValueTask DisposeAsync()
    {
        Plane.Dispose();
        await Host.DisposeAsync();
    }
}
