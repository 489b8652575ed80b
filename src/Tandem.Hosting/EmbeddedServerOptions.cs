using Tandem.Engine.Serving;
using Tandem.Frontend;
using Tandem.Worker;

namespace Tandem.Hosting;

/// <summary>How `tandem serve` splits the work.</summary>
public enum ServeMode
{
    Aggregated,
    Disaggregated,
}

/// <summary>Settings of `tandem serve`: the model, its engine, the workers and the frontend.</summary>
public sealed record EmbeddedServerOptions
{
    /// <summary>A .gguf file or Hugging Face directory; null = the demo model.</summary>
    public string? ModelPath { get; init; }

    /// <summary>The name clients use; default: the model's file or directory name (or tandem-demo).</summary>
    public string? ServedModelName { get; init; }

    /// <summary>Aggregated workers (mode agg), each with its own engine and KV cache over the same mapped weights.</summary>
    public int Workers { get; init; } = 1;

    /// <summary>agg: aggregated workers; disagg: <see cref="PrefillWorkers"/> prefill and <see cref="DecodeWorkers"/> decode workers.</summary>
    public ServeMode Mode { get; init; } = ServeMode.Aggregated;

    public int PrefillWorkers { get; init; } = 1;

    public int DecodeWorkers { get; init; } = 1;

    /// <summary>Conditional disaggregation settings of the decode workers (mode disagg).</summary>
    public DisaggregationOptions Disaggregation { get; init; } = new();

    /// <summary>Compute threads per worker; 0 = one per core.</summary>
    public int Threads { get; init; }

    public string Router { get; init; } = Tandem.Routing.RoutingPolicies.RoundRobin;

    public ServingOptions Serving { get; init; } = new();

    public FrontendOptions Frontend { get; init; } = new();

    /// <summary>`builtin` (the transformer) or `mocker` (timing model, no weights; see <see cref="EngineKinds"/>).</summary>
    public string Engine { get; init; } = EngineKinds.Builtin;

    /// <summary>Mocker profile file or shipped name (default mocker-h100-8b).</summary>
    public string? MockerProfile { get; init; }

    /// <summary>Mocker step times are divided by this.</summary>
    public double SpeedupRatio { get; init; } = 1.0;

    /// <summary>Mocker engine limits; null = the profile's (block size 64, 16384 blocks, ...).</summary>
    public ServingOptions? MockerServing { get; init; }

    /// <summary>Settings of the `kv` router.</summary>
    public Tandem.Routing.Kv.KvRoutingOptions KvRouting { get; init; } = new();

    /// <summary>Blocks the KV index keeps per worker (0 = unbounded).</summary>
    public int KvIndexMaxBlocksPerWorker { get; init; }
}
