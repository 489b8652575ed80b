using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Tandem.Abstractions;
using Tandem.Engine.Models;
using Tandem.Engine.Serving;
using Tandem.Hosting;
using Tandem.Runtime;
using Tandem.Transfer;
using Tandem.Transfer.Tests;
using Tandem.Worker;

namespace Tandem.Frontend.Tests;

/// <summary>A random-weight `small` preset model (4 layers, 256 wide, vocabulary 512) written once for the class.</summary>
public sealed class SmallPresetModel : IDisposable
{
    private readonly TestModels.TempDirectory _dir = TestModels.CreateTempDirectory();

    public SmallPresetModel()
    {
        Path = ModelInitializer.Write(System.IO.Path.Combine(_dir.Path, "small.gguf"), new ModelInitOptions { Preset = ModelPresets.Small, Seed = 5 });
    }

    public string Path { get; }

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// A prefill and a decode worker wired as `tandem worker` wires them (KV transfer servers, TCP and shared-memory
/// transports, the prefill queue on a bus) but in one process, so faults can be injected between them: greedy outputs
/// equal an aggregated engine's over TCP and shared memory, and every transfer fault falls back without loss or leaks.
/// Prompts span several 16-token blocks with a partial last block.
/// </summary>
public sealed class NetworkDisaggregationTests(SmallPresetModel model) : IClassFixture<SmallPresetModel>
{
    private const int BlockSize = 16;

    private static readonly int[] Lengths = [70, 130, 200, 33];

    private static int[] Prompt(int length, int seed) =>
        [.. Enumerable.Range(0, length).Select(i => 3 + (((seed * 7919) + (i * 104729) + (i * i * 31)) % 509))];

    private static GenerateRequest Greedy(int[] prompt) => new()
    {
        RequestId = Guid.NewGuid().ToString("N"),
        PromptTokens = prompt,
        MaxTokens = 12,
        MinTokens = 6, // as `tandem bench` asks: the prefill side must not refuse min_tokens above its one token
        IgnoreEos = true,
    };

    private static async Task<int[]> TokensAsync(IAsyncEnumerable<TokenOutput> stream)
    {
        var tokens = new List<int>();
        await foreach (var t in stream)
        {
            tokens.Add(t.TokenId);
        }
        return [.. tokens];
    }

    private async Task<List<int[]>> AggregatedAsync(IEnumerable<int[]> prompts)
    {
        using var loaded = LoadedModel.Load(model.Path, threads: 1);
        using var engine = new ServingEngine(loaded.Transformer, loaded.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 128, BlockSize = BlockSize });
        var outputs = new List<int[]>();
        foreach (var prompt in prompts)
        {
            outputs.Add(await TokensAsync(engine.SubmitAsync(Greedy(prompt))));
        }
        return outputs;
    }

    private static List<int[]> Prompts(int seed) => [.. Lengths.Select((length, i) => Prompt(length, seed + i))];

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task DecodeFirstAndPrefillFirst_OverTheNetworkTransport_TokenIdenticalToAggregated(string transport)
    {
        var prompts = Prompts(1);
        // The same prompts again with a shared first part: prefix hits on either side.
        prompts.AddRange(prompts.Take(3).Select(p => p.Take(p.Length - 20).Concat(Prompt(20, 99)).ToArray()));
        var expected = await AggregatedAsync(prompts);
        await using var pair = await WorkerPair.StartAsync(model.Path, transport);
        var before = KvTransferMetrics.TotalBytes;

        var decodeFirst = new List<int[]>();
        foreach (var prompt in prompts)
        {
            decodeFirst.Add(await TokensAsync(pair.Decode.GenerateAsync(Greedy(prompt))));
        }
        var prefillFirst = new List<int[]>();
        foreach (var prompt in prompts)
        {
            var request = Greedy(prompt);
            var handle = await pair.Prefill.PrefillAsync(request);
            Assert.NotNull(handle.Kv);
            prefillFirst.Add(await TokensAsync(pair.Decode.GenerateAsync(request with { RemoteKv = handle.Kv })));
            await pair.Prefill.ReleaseKvAsync(handle.Kv.Handle);
        }

        Assert.Equal(expected, decodeFirst);
        Assert.Equal(expected, prefillFirst);
        var stats = await pair.Decode.GetStatsAsync();
        // Decode-first (local up to 32 uncached tokens): the 4 first prompts go remote (33 tokens is one above); of the
        // repeats, which hit the decode worker's own cache, the 70- and 200-token ones have 22 and 24 uncached tokens
        // and stay local, the 130-token one has 34 and goes remote with only its uncached blocks pushed (first block 6).
        // Prefill-first: all 7 pulled, the repeats hitting the prefill worker's cache.
        Assert.Equal(5 + prompts.Count, stats.RemotePrefills);
        Assert.Equal(2, stats.LocalPrefills);
        Assert.Empty(stats.PrefillFallbacks);
        Assert.True(KvTransferMetrics.TotalBytes > before);
        Assert.Equal(transport == "shm", pair.DecodeServer.MappedSegments + pair.PrefillServer.MappedSegments > 0);
        await pair.AssertNoLeaksAsync();
    }

    [Theory]
    [InlineData("corrupt")]
    [InlineData("drop")]
    [InlineData("stall")]
    public async Task DecodeFirst_TcpFaultDuringThePush_FallsBackLocally_SameOutput_NoLeaks(string fault)
    {
        var prompts = Prompts(2).Take(3).ToList();
        var expected = await AggregatedAsync(prompts);
        await using var pair = await WorkerPair.StartAsync(model.Path, "tcp", proxyDecode: true, chunkTimeout: TimeSpan.FromMilliseconds(500));
        var proxy = pair.DecodeProxy!;
        switch (fault)
        {
            case "corrupt":
                proxy.CorruptClientToServerAt = 5_000; // inside the first KV chunk
                break;
            case "stall":
                proxy.StallClientToServerAfter = 5_000;
                break;
        }

        var outputs = new List<int[]>();
        foreach (var prompt in prompts)
        {
            if (fault == "drop")
            {
                // Every KV connection to the decode worker is cut while the prefill worker pushes into it.
                pair.DecodeAccessWrites = _ => proxy.KillAll();
            }
            outputs.Add(await TokensAsync(pair.Decode.GenerateAsync(Greedy(prompt))));
        }

        Assert.Equal(expected, outputs);
        var stats = await pair.Decode.GetStatsAsync();
        Assert.Equal(0, stats.RemotePrefills);
        Assert.Equal(3, stats.PrefillFallbacks.Values.Sum());
        Assert.True(stats.PrefillFallbacks.Keys.All(k => k is "prefill_error" or "timeout" or "push_failed"), string.Join(", ", stats.PrefillFallbacks));
        await pair.AssertNoLeaksAsync();
    }

    [Fact]
    public async Task PrefillFirst_CorruptedPull_DecodeWorkerPrefillsLocally_SameOutput_NoLeaks()
    {
        var prompts = Prompts(3).Take(2).ToList();
        var expected = await AggregatedAsync(prompts);
        await using var pair = await WorkerPair.StartAsync(model.Path, "tcp", proxyPrefill: true);
        pair.PrefillProxy!.CorruptServerToClientAt = 5_000;
        var outputs = new List<int[]>();
        foreach (var prompt in prompts)
        {
            var request = Greedy(prompt);
            var handle = await pair.Prefill.PrefillAsync(request);
            outputs.Add(await TokensAsync(pair.Decode.GenerateAsync(request with { RemoteKv = handle.Kv })));
            await pair.Prefill.ReleaseKvAsync(handle.Kv!.Handle);
        }

        Assert.Equal(expected, outputs);
        var stats = await pair.Decode.GetStatsAsync();
        Assert.Equal(2, stats.PrefillFallbacks["pull_failed"]);
        await pair.AssertNoLeaksAsync();
    }

    [Fact]
    public async Task DecodeFirst_PrefillWorkerStallsMidPush_TimeoutFallback_SameOutput_NoLeaks()
    {
        var prompts = Prompts(4).Take(2).ToList();
        var expected = await AggregatedAsync(prompts);
        // The push stops moving after some KV bytes (a stalled prefill process); the decode worker gives up after its
        // remote-prefill timeout, well before the transfer's own chunk timeout.
        await using var pair = await WorkerPair.StartAsync(model.Path, "tcp", proxyDecode: true, remotePrefillTimeout: TimeSpan.FromMilliseconds(1500));
        pair.DecodeProxy!.StallClientToServerAfter = 5_000;
        var outputs = new List<int[]>();
        foreach (var prompt in prompts)
        {
            outputs.Add(await TokensAsync(pair.Decode.GenerateAsync(Greedy(prompt))));
        }

        Assert.Equal(expected, outputs);
        var stats = await pair.Decode.GetStatsAsync();
        Assert.Equal(2, stats.PrefillFallbacks["timeout"]);
        pair.DecodeProxy.KillAll(); // the stalled pushes fail now; their leases are released
        await pair.AssertNoLeaksAsync();
    }

    /// <summary>Two workers of one model in roles prefill and decode, with KV servers, transports and a bus.</summary>
    private sealed class WorkerPair : IAsyncDisposable
    {
        private readonly List<IAsyncDisposable> _owned = [];
        private readonly List<LoadedModel> _models = [];

        public EngineWorker Prefill { get; private set; } = null!;

        public EngineWorker Decode { get; private set; } = null!;

        public KvTransferServer PrefillServer { get; private set; } = null!;

        public KvTransferServer DecodeServer { get; private set; } = null!;

        public TcpFaultProxy? DecodeProxy { get; private set; }

        public TcpFaultProxy? PrefillProxy { get; private set; }

        public Action<int>? DecodeAccessWrites { get; set; }

        public static async Task<WorkerPair> StartAsync(string path, string transport, bool proxyDecode = false, bool proxyPrefill = false, TimeSpan? chunkTimeout = null, TimeSpan? remotePrefillTimeout = null)
        {
            var pair = new WorkerPair();
            var bus = new InMemoryEventBus();
            var discovery = new InMemoryDiscovery();
            var options = KvTransferOptions.Default with { ChunkTimeout = chunkTimeout ?? TimeSpan.FromSeconds(10) };
            var disagg = new DisaggregationOptions { MaxLocalPrefillLength = 32, RemotePrefillTimeout = remotePrefillTimeout ?? TimeSpan.FromSeconds(30) };
            foreach (var role in new[] { WorkerRole.Prefill, WorkerRole.Decode })
            {
                var loaded = LoadedModel.Load(path, threads: 1);
                pair._models.Add(loaded);
                var engine = new ServingEngine(loaded.Transformer, loaded.Tokenizer.StopTokenIds, new ServingOptions { NumKvBlocks = 128, BlockSize = BlockSize });
                var fingerprint = ModelSource.Fingerprint(loaded);
                var access = new EngineKvAccess(engine, fingerprint);
                var server = new KvTransferServer(new HookedKvAccess(access, () => role == WorkerRole.Decode ? pair.DecodeAccessWrites : null), options: options);
                pair._owned.Add(server);
                var tcp = new TcpKvTransport(options);
                var shm = new SharedMemoryKvTransport(options);
                pair._owned.Add(tcp);
                pair._owned.Add(shm);
                string address;
                if (role == WorkerRole.Decode ? proxyDecode : proxyPrefill)
                {
                    var proxy = new TcpFaultProxy(new IPEndPoint(IPAddress.Loopback, server.EndPoint.Port));
                    pair._owned.Add(proxy);
                    address = proxy.Address(TcpKvTransport.Scheme);
                    if (role == WorkerRole.Decode)
                    {
                        pair.DecodeProxy = proxy;
                    }
                    else
                    {
                        pair.PrefillProxy = proxy;
                    }
                }
                else
                {
                    address = transport == "shm" ? server.AdvertisedAddress : server.TcpAddress;
                }
                var services = new WorkerServices
                {
                    Bus = bus,
                    Transports = [new SameHostKvTransport(tcp, shm), shm],
                    KvAddress = address,
                    Discovery = discovery,
                    Options = disagg,
                };
                var instance = new WorkerInstance
                {
                    InstanceId = role == WorkerRole.Prefill ? "prefill-0" : "decode-0",
                    Role = role,
                    Model = "small",
                    ModelFingerprint = fingerprint,
                    StartedAt = DateTimeOffset.UtcNow,
                };
                var worker = new EngineWorker(engine, instance, services, NullLogger.Instance, ownsEngine: true, kvAccess: access);
                worker.Start();
                discovery.Register(worker.Instance);
                if (role == WorkerRole.Prefill)
                {
                    pair.Prefill = worker;
                    pair.PrefillServer = server;
                }
                else
                {
                    pair.Decode = worker;
                    pair.DecodeServer = server;
                }
            }
            await Task.Delay(50); // the prefill worker's queue subscription
            return pair;
        }

        public async Task AssertNoLeaksAsync()
        {
            foreach (var w in new[] { Prefill, Decode })
            {
                for (var i = 0; i < 200 && (w.Engine.GetStats().KvBlocksUsed > 0 || w.KvAccess.PublishedLeases > 0); i++)
                {
                    await Task.Delay(20);
                }
                Assert.Equal(0, w.Engine.GetStats().KvBlocksUsed);
                Assert.Equal(0, w.KvAccess.PublishedLeases);
            }
            var stats = await Decode.GetStatsAsync();
            Assert.Equal(0, stats.Running);
            Assert.Equal(0, stats.Waiting);
        }

        public async ValueTask DisposeAsync()
        {
            await Prefill.DisposeAsync();
            await Decode.DisposeAsync();
            for (var i = _owned.Count - 1; i >= 0; i--)
            {
                await _owned[i].DisposeAsync();
            }
            foreach (var loaded in _models)
            {
                loaded.Dispose();
            }
        }
    }

    /// <summary>What the KV server of a worker serves: the engine's KV access, with a hook before each layer is written.</summary>
    private sealed class HookedKvAccess(EngineKvAccess inner, Func<Action<int>?> beforeWrite) : IKvBlockAccess
    {
        public KvLayout Layout => inner.Layout;

        public KvLeaseInfo Describe(long handle) => inner.Describe(handle);

        public void Read(long handle, int layer, int first, int count, Span<float> keys, Span<float> values) => inner.Read(handle, layer, first, count, keys, values);

        public void Write(long handle, int layer, int first, int count, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
        {
            beforeWrite()?.Invoke(layer);
            inner.Write(handle, layer, first, count, keys, values);
        }
    }
}
