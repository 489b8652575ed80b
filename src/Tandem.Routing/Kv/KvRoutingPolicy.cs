using Tandem.Abstractions;

namespace Tandem.Routing.Kv;

/// <summary>
/// KV-aware routing: for each candidate, cost = weight × (blocks to prefill there: the request's blocks the worker does
/// not cache yet + the blocks of requests the router sent there that are not prefilled yet) + the worker's active blocks
/// (what the router sent there that is still running). The lowest cost wins (ties at random); with a temperature above 0 the worker is sampled from a softmax over the negative normalized costs.
/// The overlap comes from the <see cref="KvIndexer"/>, which the workers' KV events keep current.
/// </summary>
public sealed class KvRoutingPolicy : IRoutingPolicy
{
    private readonly Random _random;
    private readonly Lock _gate = new();
    private long _requestBlocks;
    private long _overlapBlocks;

    public KvRoutingPolicy(KvIndexer indexer, KvRoutingOptions? options = null)
    {
        Indexer = indexer ?? throw new ArgumentNullException(nameof(indexer));
        Options = options ?? new KvRoutingOptions();
        Options.Validate();
        _random = Options.Seed is { } s ? new Random(s) : new Random();
    }

    public string Name => RoutingPolicies.Kv;

    public KvIndexer Indexer { get; }

    public KvRoutingOptions Options { get; }

    /// <summary>Full request blocks routed so far, and of them the ones the chosen worker already cached (the router's predicted prefix hit rate is their ratio).</summary>
    public (long RequestBlocks, long OverlapBlocks) Totals => (Interlocked.Read(ref _requestBlocks), Interlocked.Read(ref _overlapBlocks));

    /// <summary>Block size used when a worker does not advertise one.</summary>
    public const int DefaultBlockSize = 16;

    public RoutingCandidate Choose(RoutingRequest request, IReadOnlyList<RoutingCandidate> candidates)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(candidates);
        var costs = new double[candidates.Count];
        var overlaps = new int[candidates.Count];
        var seed = BlockHashing.SeedFor(request.CacheSalt);
        var tokens = request.PromptTokens as int[] ?? [.. request.PromptTokens];
        Dictionary<int, (ulong[] Hashes, Dictionary<string, int> Matches)>? bySize = null;
        (ulong[] Hashes, Dictionary<string, int> Matches) first = ([], []);
        var firstSize = -1;
        for (var i = 0; i < candidates.Count; i++)
        {
            var c = candidates[i];
            var size = c.Instance.KvBlockSize > 0 ? c.Instance.KvBlockSize : DefaultBlockSize;
            (ulong[] Hashes, Dictionary<string, int> Matches) entry;
            if (firstSize == -1 || size == firstSize)
            {
                if (firstSize == -1)
                {
                    firstSize = size;
                    var h = BlockHashing.SequenceHashes(tokens, size, seed);
                    first = (h, Indexer.FindMatches(h));
                }
                entry = first;
            }
            else
            {
                bySize ??= [];
                if (!bySize.TryGetValue(size, out entry))
                {
                    var h = BlockHashing.SequenceHashes(tokens, size, seed);
                    entry = (h, Indexer.FindMatches(h));
                    bySize[size] = entry;
                }
            }
            var requestBlocks = (tokens.Length + size - 1) / size;
            overlaps[i] = entry.Matches.GetValueOrDefault(c.Instance.InstanceId);
            costs[i] = Cost(Options.OverlapScoreWeight, requestBlocks, overlaps[i], c.ActiveBlocks, c.PrefillBlocks);
        }
        int chosen;
        lock (_gate)
        {
            chosen = Options.Temperature > 0 ? Sample(costs, Options.Temperature, _random) : ArgMin(costs, _random);
        }
        var chosenSize = candidates[chosen].Instance.KvBlockSize > 0 ? candidates[chosen].Instance.KvBlockSize : DefaultBlockSize;
        Interlocked.Add(ref _requestBlocks, tokens.Length / chosenSize);
        Interlocked.Add(ref _overlapBlocks, overlaps[chosen]);
        var hashes = chosenSize == firstSize ? first.Hashes : bySize![chosenSize].Hashes;
        return candidates[chosen] with { CachedBlocks = overlaps[chosen], BlockHashes = hashes };
    }

    /// <summary>
    /// The cost of sending a request of <paramref name="requestBlocks"/> blocks to a worker that caches
    /// <paramref name="overlapBlocks"/> of them, has <paramref name="activeBlocks"/> active and
    /// <paramref name="pendingPrefillBlocks"/> still to prefill for earlier requests.
    /// </summary>
    public static double Cost(double overlapWeight, int requestBlocks, int overlapBlocks, long activeBlocks, long pendingPrefillBlocks = 0) =>
        (overlapWeight * (Math.Max(0, requestBlocks - overlapBlocks) + pendingPrefillBlocks)) + activeBlocks;

    /// <summary>The index of the lowest cost; equal lowest costs are chosen between uniformly.</summary>
    internal static int ArgMin(ReadOnlySpan<double> costs, Random random)
    {
        var best = 0;
        var ties = 1;
        for (var i = 1; i < costs.Length; i++)
        {
            if (costs[i] < costs[best])
            {
                best = i;
                ties = 1;
            }
            else if (costs[i] == costs[best] && random.Next(++ties) == 0)
            {
                best = i; // reservoir sampling over the ties
            }
        }
        return best;
    }

    /// <summary>
    /// Samples an index with probability ∝ exp(−cost / (scale × temperature)), where scale is the largest cost (at least
    /// 1): costs are normalized to [0, 1] so the temperature means the same at any load.
    /// </summary>
    internal static int Sample(ReadOnlySpan<double> costs, double temperature, Random random)
    {
        var probabilities = Probabilities(costs, temperature);
        var u = random.NextDouble();
        for (var i = 0; i < probabilities.Length; i++)
        {
            u -= probabilities[i];
            if (u < 0)
            {
                return i;
            }
        }
        return probabilities.Length - 1;
    }

    /// <summary>The softmax distribution <see cref="Sample"/> draws from.</summary>
    public static double[] Probabilities(ReadOnlySpan<double> costs, double temperature)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(temperature);
        var scale = 1.0;
        var min = double.MaxValue;
        foreach (var c in costs)
        {
            scale = Math.Max(scale, c);
            min = Math.Min(min, c);
        }
        var p = new double[costs.Length];
        var sum = 0.0;
        for (var i = 0; i < costs.Length; i++)
        {
            p[i] = Math.Exp(-(costs[i] - min) / (scale * temperature));
            sum += p[i];
        }
        for (var i = 0; i < p.Length; i++)
        {
            p[i] /= sum;
        }
        return p;
    }
}
