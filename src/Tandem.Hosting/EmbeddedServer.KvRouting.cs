using Tandem.Abstractions;
using Tandem.Engine.Serving;
using Tandem.Engine.Serving.Mocker;
using Tandem.Engine.Tokenizers;
using Tandem.Frontend.Models;
using Tandem.Routing;
using Tandem.Routing.Kv;
using Tandem.Worker;

namespace Tandem.Hosting;

/// <summary>`tandem serve` with the mocker engine and with KV-aware routing (event plane in memory).</summary>
public sealed partial class EmbeddedServer
{
    /// <summary>The name the mocker's model is served under unless --served-model-name says otherwise.</summary>
    public const string MockerModelName = "tandem-mocker";

    private readonly List<KvEventPublisher> _publishers = [];
    private KvEventSubscriber? _subscriber;

    /// <summary>The KV index the `kv` router uses (null for other routers).</summary>
    public KvIndexer? KvIndex { get; private set; }

    /// <summary>Keeps the KV index fed (null unless the router is `kv`).</summary>
    public KvEventSubscriber? KvEvents => _subscriber;

    private static bool IsMocker(EmbeddedServerOptions options) => string.Equals(options.Engine, EngineKinds.Mocker, StringComparison.Ordinal);

    private static (IRoutingPolicy Policy, KvIndexer? Index) CreatePolicy(EmbeddedServerOptions options)
    {
        if (options.Engine is not (EngineKinds.Builtin or EngineKinds.Mocker))
        {
            throw new ArgumentException($"unknown engine '{options.Engine}'; choose one of: {EngineKinds.Builtin}, {EngineKinds.Mocker}");
        }
        var index = options.Router == RoutingPolicies.Kv ? new KvIndexer(options.KvIndexMaxBlocksPerWorker) : null;
        return (RoutingPolicies.Create(options.Router, options.KvRouting.Seed, index, options.KvRouting), index);
    }

    /// <summary>The mocker profile of <paramref name="options"/>, shaped to the built-in vocabulary the frontend tokenizes with.</summary>
    public static MockerProfile ResolveMockerProfile(EmbeddedServerOptions options, Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var profile = MockerProfile.Load(options.MockerProfile ?? MockerProfile.DefaultProfileName);
        return profile with
        {
            SpeedupRatio = options.SpeedupRatio,
            Model = profile.Model with { VocabSize = tokenizer.VocabSize },
            Tokens = profile.Tokens with
            {
                FirstOutputToken = Math.Min(profile.Tokens.FirstOutputToken, tokenizer.VocabSize / 2),
                StopTokenIds = tokenizer.StopTokenIds,
            },
        };
    }

    /// <summary>Starts <see cref="EmbeddedServerOptions.Workers"/> mocker workers (no weights) and registers the model with the built-in tokenizer.</summary>
    private void AddMockerWorkers(EmbeddedServerOptions options, ModelCatalog catalog)
    {
        var tokenizer = BuiltinVocabulary.Create();
        var profile = ResolveMockerProfile(options, tokenizer);
        ModelName = options.ServedModelName ?? MockerModelName;
        catalog.Add(new ServedModel { Name = ModelName, Tokenizer = tokenizer, ContextLength = profile.Model.ContextLength });
        var serving = options.MockerServing ?? profile.ToServingOptions();
        for (var i = 0; i < options.Workers; i++)
        {
            var engine = ServingEngine.CreateMocker(profile, serving);
            var worker = new EngineWorker(engine, new WorkerInstance
            {
                InstanceId = $"worker-{i}",
                Role = WorkerRole.Both,
                Model = ModelName,
                ModelFingerprint = "mocker|" + profile.Name,
                StartedAt = DateTimeOffset.UtcNow,
            });
            _workers.Add(worker);
            _plane.Add(worker);
            _discovery.Register(worker.Instance);
        }
    }

    /// <summary>For the `kv` router: every worker publishes KV events and load on the in-memory bus; the router's index follows them.</summary>
    private async Task StartKvEventsAsync(KvIndexer? index)
    {
        KvIndex = index;
        if (index is null)
        {
            return;
        }
        _subscriber = new KvEventSubscriber(_bus, index, _discovery, Frontend.Router);
        await _subscriber.StartAsync().ConfigureAwait(false);
        KvRouterMetrics.Register(Frontend.Metrics.Registry, _subscriber, _bus);
        foreach (var w in _workers)
        {
            var publisher = new KvEventPublisher(w.Engine, w.Instance.InstanceId, _bus);
            _publishers.Add(publisher);
            await publisher.StartAsync().ConfigureAwait(false);
        }
    }

    private async Task StopKvEventsAsync()
    {
        foreach (var p in _publishers)
        {
            await p.DisposeAsync().ConfigureAwait(false);
        }
        _publishers.Clear();
        if (_subscriber is { } s)
        {
            _subscriber = null;
            await s.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>Engines `tandem serve --engine` knows.</summary>
public static class EngineKinds
{
    /// <summary>The transformer engine (computes on the CPU).</summary>
    public const string Builtin = "builtin";

    /// <summary>The same scheduler with compute replaced by a timing model (no weights).</summary>
    public const string Mocker = "mocker";
}
