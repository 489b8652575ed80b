namespace Tandem.Runtime.Etcd;

/// <summary>
/// How to reach etcd and how registrations behave. Validated once (<see cref="Validate"/>) when a registration or a
/// discovery starts; both keep the validated instance and never read a changed one.
/// </summary>
public sealed record EtcdDiscoveryOptions
{
    /// <summary>Comma-separated etcd client URLs: <c>etcd://host:port</c> (plain HTTP/2), <c>http://</c> or <c>https://</c>.</summary>
    public string Endpoints { get; init; } = "etcd://127.0.0.1:2379";

    /// <summary>Separates deployments sharing one etcd: keys live under <c>/tandem/v1/{namespace}/</c>.</summary>
    public string Namespace { get; init; } = "default";

    /// <summary>Lease time to live: a worker that stops refreshing disappears after at most this long.</summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Deadline of every unary etcd call (range, put, grant, revoke) and of each keep-alive exchange.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>First wait after a failed connection; doubles on each failure up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan MinReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>The lease is refreshed this often: a third of the TTL, so two refreshes may fail before it expires.</summary>
    public TimeSpan KeepAliveInterval => LeaseTtl / 3;

    /// <summary>The lease TTL sent to etcd, in whole seconds (at least one).</summary>
    internal long LeaseTtlSeconds => Math.Max(1, (long)Math.Ceiling(LeaseTtl.TotalSeconds));

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        _ = ParseEndpoints();
        EtcdKeys.ValidateNamespace(Namespace);
        if (LeaseTtl < TimeSpan.FromSeconds(1))
        {
            throw new ArgumentException($"lease TTL must be at least 1 s, got {LeaseTtl}", nameof(LeaseTtl));
        }
        if (RequestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"request timeout must be positive, got {RequestTimeout}", nameof(RequestTimeout));
        }
        if (MinReconnectDelay <= TimeSpan.Zero || MaxReconnectDelay < MinReconnectDelay)
        {
            throw new ArgumentException(
                $"reconnect delays must satisfy 0 < min <= max, got {MinReconnectDelay} and {MaxReconnectDelay}", nameof(MinReconnectDelay));
        }
    }

    /// <summary>The endpoints as absolute http/https URIs (<c>etcd://</c> becomes <c>http://</c>).</summary>
    public IReadOnlyList<Uri> ParseEndpoints()
    {
        var parts = Endpoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            throw new ArgumentException("no etcd endpoint given", nameof(Endpoints));
        }
        var result = new List<Uri>(parts.Length);
        foreach (var part in parts)
        {
            var text = part.Contains("://", StringComparison.Ordinal) ? part : "http://" + part;
            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
            {
                throw new ArgumentException($"invalid etcd endpoint '{part}'", nameof(Endpoints));
            }
            var scheme = uri.Scheme switch
            {
                "etcd" or "http" => "http",
                "https" => "https",
                _ => throw new ArgumentException($"unsupported scheme in etcd endpoint '{part}' (use etcd, http or https)", nameof(Endpoints)),
            };
            var port = uri.IsDefaultPort || uri.Port <= 0 ? 2379 : uri.Port;
            result.Add(new UriBuilder(scheme, uri.Host, port).Uri);
        }
        if (result.Select(u => u.Scheme).Distinct(StringComparer.Ordinal).Count() > 1)
        {
            throw new ArgumentException("etcd endpoints mix http and https", nameof(Endpoints));
        }
        return result;
    }
}
