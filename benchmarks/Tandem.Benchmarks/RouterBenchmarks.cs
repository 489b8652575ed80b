using BenchmarkDotNet.Attributes;
using Tandem.Abstractions;
using Tandem.Routing;
using Tandem.Routing.Kv;

namespace Tandem.Benchmarks;

/// <summary>
/// Router overhead per request: the `kv` policy (hash the prompt, look it up in the index, score every worker) against
/// round-robin, with 8 or 64 workers and 100k cached blocks in the index. Prompts of 4096 tokens in blocks of 64.
/// Run: dotnet run -c Release --project benchmarks/Tandem.Benchmarks -- --filter '*RouterBenchmarks*'
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class RouterBenchmarks
{
    private const int BlockSize = 64;
    private const int PromptTokens = 4096;
    private const int CachedBlocks = 100_000;
    private WorkerRouter _kv = null!;
    private WorkerRouter _roundRobin = null!;
    private KvIndexer _index = null!;
    private RoutingRequest[] _requests = [];
    private ulong[][] _hashes = [];
    private int _next;

    [Params(8, 64)]
    public int Workers { get; set; }

    private sealed class StaticDiscovery(IReadOnlyList<WorkerInstance> workers) : IDiscovery
    {
        public DiscoverySnapshot Current { get; } = new(workers, 1);

        public event Action<DiscoverySnapshot>? Changed { add { } remove { } }
    }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        var workers = Enumerable.Range(0, Workers)
            .Select(i => new WorkerInstance { InstanceId = $"worker-{i}", Role = WorkerRole.Both, Model = "m", KvBlockSize = BlockSize })
            .ToList();
        _index = new KvIndexer();
        var eventIds = new long[Workers];
        var stored = 0;
        var prompts = new List<int[]>();
        while (stored < CachedBlocks)
        {
            // A conversation-like prompt: one of 16 shared system prompts (1024 tokens), then its own tokens.
            var system = random.Next(16);
            var tokens = new int[PromptTokens];
            for (var i = 0; i < tokens.Length; i++)
            {
                tokens[i] = i < 1024 ? ((system * 7919) + (i * 31)) % 32000 : random.Next(32000);
            }
            prompts.Add(tokens);
            var hashes = BlockHashing.SequenceHashes(tokens, BlockSize);
            var w = random.Next(Workers);
            _index.Apply(workers[w].InstanceId, new KvBlocksStored(++eventIds[w], null, [.. hashes.Select(h => new KvStoredBlock(h, 0))]));
            stored += hashes.Length;
        }
        // Requests continue cached conversations (a new last quarter) so lookups walk long shared prefixes.
        _requests = [.. prompts.Take(256).Select((p, i) =>
        {
            var tokens = (int[])p.Clone();
            for (var j = 3072; j < tokens.Length; j++)
            {
                tokens[j] = (i + j) % 32000;
            }
            return new RoutingRequest($"r{i}", "m", tokens);
        })];
        _hashes = [.. _requests.Select(r => BlockHashing.SequenceHashes(((int[])r.PromptTokens), BlockSize))];
        var discovery = new StaticDiscovery(workers);
        _kv = new WorkerRouter(discovery, RoutingPolicies.Create(RoutingPolicies.Kv, 1, _index));
        _roundRobin = new WorkerRouter(discovery, RoutingPolicies.Create(RoutingPolicies.RoundRobin));
    }

    [Benchmark(Baseline = true)]
    public string RoundRobin()
    {
        using var routed = _roundRobin.Route(_requests[_next++ & 255])!;
        return routed.Instance.InstanceId;
    }

    /// <summary>The whole kv decision: hashing 4096 tokens, the index lookup and the scoring.</summary>
    [Benchmark]
    public string Kv()
    {
        using var routed = _kv.Route(_requests[_next++ & 255])!;
        return routed.Instance.InstanceId;
    }

    /// <summary>Only the index lookup (64 block hashes).</summary>
    [Benchmark]
    public int IndexLookup() => _index.FindMatches(_hashes[_next++ & 255]).Count;

    /// <summary>Only hashing the prompt's 64 blocks.</summary>
    [Benchmark]
    public int HashPrompt() => BlockHashing.SequenceHashes((int[])_requests[_next++ & 255].PromptTokens, BlockSize).Length;
}
