namespace Tandem.Routing.Kv;

/// <summary>Settings of the `kv` routing policy (`--kv-overlap-score-weight`, `--router-temperature`, `--router-seed`).</summary>
public sealed record KvRoutingOptions
{
    /// <summary>Weight of the blocks a worker would have to prefill against its active decode blocks.</summary>
    public double OverlapScoreWeight { get; init; } = 1.0;

    /// <summary>0: the lowest cost wins (ties broken at random); above 0: a softmax over negative normalized costs.</summary>
    public double Temperature { get; init; }

    /// <summary>Seeds tie-breaking and sampling (null: not reproducible).</summary>
    public int? Seed { get; init; }

    public void Validate()
    {
        if (!(OverlapScoreWeight >= 0) || !double.IsFinite(OverlapScoreWeight))
        {
            throw new ArgumentException($"--kv-overlap-score-weight must be a finite number ≥ 0, got {OverlapScoreWeight}");
        }
        if (!(Temperature >= 0) || !double.IsFinite(Temperature))
        {
            throw new ArgumentException($"--router-temperature must be a finite number ≥ 0, got {Temperature}");
        }
    }
}
