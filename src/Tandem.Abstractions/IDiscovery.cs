namespace Tandem.Abstractions;

/// <summary>An immutable view of the live workers; a new snapshot replaces the old one on every change.</summary>
public sealed record DiscoverySnapshot(IReadOnlyList<WorkerInstance> Instances, long Version)
{
    public static DiscoverySnapshot Empty { get; } = new([], 0);

    /// <summary>Workers that can take generate requests for <paramref name="model"/>.</summary>
    public IReadOnlyList<WorkerInstance> DecodeWorkers(string model) =>
        [.. Instances.Where(i => i.CanDecode && string.Equals(i.Model, model, StringComparison.Ordinal))];

    /// <summary>The distinct models served by at least one decode-capable worker, in first-registered order.</summary>
    public IReadOnlyList<string> Models => [.. Instances.Where(i => i.CanDecode).Select(i => i.Model).Distinct(StringComparer.Ordinal)];
}

/// <summary>Which workers are alive (in-memory for `tandem serve`, etcd or a static file for separate processes).</summary>
public interface IDiscovery
{
    DiscoverySnapshot Current { get; }

    /// <summary>Raised after <see cref="Current"/> changed, with the new snapshot.</summary>
    event Action<DiscoverySnapshot>? Changed;
}
