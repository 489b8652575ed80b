using System.CommandLine;
using Tandem.Hosting;
using Tandem.Routing.Kv;

namespace Tandem.Cli.Commands;

/// <summary>`tandem serve` flags of the mocker engine and the `kv` router.</summary>
internal sealed class KvRoutingFlags
{
    private readonly Option<string> _engine = CliOptions.Create("--engine", "Engine: builtin (the transformer) or mocker (simulated timing, no weights)", EngineKinds.Builtin);
    private readonly Option<string?> _profile = CliOptions.Create<string?>("--mocker-profile", "Mocker profile: a JSON file or a shipped name (default mocker-h100-8b)", null);
    private readonly Option<double> _speedup = CliOptions.Create("--speedup-ratio", "Mocker: divide simulated step times by this", 1.0);
    private readonly Option<double> _overlapWeight = CliOptions.Create("--kv-overlap-score-weight", "kv router: weight of blocks to prefill against active decode blocks", 1.0);
    private readonly Option<double> _temperature = CliOptions.Create("--router-temperature", "kv router: 0 = lowest cost wins; above 0 = softmax sampling over costs", 0.0);
    private readonly Option<int?> _seed = CliOptions.Optional<int>("--router-seed", "Seed for router tie-breaking and sampling (default: random)");
    private readonly Option<int> _indexCap = CliOptions.Create("--kv-index-max-blocks", "kv router: blocks indexed per worker at most (0 = unbounded)", 0);

    public IEnumerable<Option> Options => [_engine, _profile, _speedup, .. RouterOptions];

    /// <summary>The `kv` router's flags alone (`tandem frontend` has no engine).</summary>
    public IEnumerable<Option> RouterOptions => [_overlapWeight, _temperature, _seed, _indexCap];

    /// <summary>The `kv` router's settings, validated, and the per-worker index cap.</summary>
    public (KvRoutingOptions Options, int IndexMaxBlocksPerWorker) ReadRouter(ParseResult parse)
    {
        var kv = new KvRoutingOptions
        {
            OverlapScoreWeight = parse.GetValue(_overlapWeight),
            Temperature = parse.GetValue(_temperature),
            Seed = parse.GetValue(_seed),
        };
        kv.Validate();
        return (kv, parse.GetValue(_indexCap));
    }

    /// <summary>Adds the mocker and kv-router settings to <paramref name="options"/>; <paramref name="serving"/> flags given explicitly override the mocker profile's limits.</summary>
    public EmbeddedServerOptions Apply(ParseResult parse, EmbeddedServerOptions options, ServingFlags serving)
    {
        var (kv, indexCap) = ReadRouter(parse);
        var engine = parse.GetValue(_engine)!;
        var result = options with
        {
            Engine = engine,
            MockerProfile = parse.GetValue(_profile) is { Length: > 0 } p ? p : null,
            SpeedupRatio = parse.GetValue(_speedup) is var s && s > 0 && double.IsFinite(s) ? s : throw new ArgumentException($"--speedup-ratio must be a positive number, got {s}"),
            KvRouting = kv,
            KvIndexMaxBlocksPerWorker = indexCap,
        };
        if (engine == EngineKinds.Mocker)
        {
            var profile = Engine.Serving.Mocker.MockerProfile.Load(result.MockerProfile ?? Engine.Serving.Mocker.MockerProfile.DefaultProfileName);
            result = result with { MockerServing = serving.ReadOver(parse, profile.ToServingOptions()) };
        }
        return result;
    }
}
