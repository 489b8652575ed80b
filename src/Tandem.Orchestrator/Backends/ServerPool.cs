using Tandem.Orchestrator.Config;

namespace Tandem.Orchestrator.Backends;

/// <summary>
/// The context or the generation servers: an immutable list swapped atomically on add/remove, a router, and the servers
/// in rotation (healthy). When none is healthy every server is offered, so a stale health verdict never blocks traffic.
/// </summary>
public sealed class ServerPool(string name, IServerRouter router)
{
    private BackendServer[] _servers = [];

    /// <summary>"context" or "generation".</summary>
    public string Name { get; } = name;

    public IServerRouter Router { get; } = router;

    public IReadOnlyList<BackendServer> Servers => Volatile.Read(ref _servers);

    public int HealthyCount => Servers.Count(s => s.Healthy);

    public static ServerPool FromConfig(string name, ServerPoolConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var pool = new ServerPool(name, ServerRouters.Create(config.Router));
        foreach (var url in config.Urls)
        {
            pool.Add(url);
        }
        return pool;
    }

    /// <summary>Adds a server unless one with the same URL is there; returns the server in the pool.</summary>
    public BackendServer Add(Uri url, string? metadataKey = null)
    {
        while (true)
        {
            var current = Volatile.Read(ref _servers);
            if (current.FirstOrDefault(s => s.Url == url) is { } existing)
            {
                return existing;
            }
            var added = new BackendServer(url, metadataKey);
            if (Interlocked.CompareExchange(ref _servers, [.. current, added], current) == current)
            {
                return added;
            }
        }
    }

    public bool Remove(BackendServer server)
    {
        while (true)
        {
            var current = Volatile.Read(ref _servers);
            if (!current.Contains(server))
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _servers, [.. current.Where(s => s != server)], current) == current)
            {
                Router.Forget(server);
                return true;
            }
        }
    }

    /// <summary>Picks a server not in <paramref name="exclude"/>; null when none is left.</summary>
    public BackendServer? Pick(RouteHint hint, IReadOnlyCollection<BackendServer>? exclude = null)
    {
        var all = Servers;
        var open = exclude is { Count: > 0 } ? [.. all.Where(s => !exclude.Contains(s))] : all;
        if (open.Count == 0)
        {
            return null;
        }
        var healthy = open.Where(s => s.Healthy).ToArray();
        return Router.Pick(healthy.Length > 0 ? healthy : open, hint);
    }
}
