using System.Collections.Concurrent;
using Tandem.Abstractions;

namespace Tandem.Runtime;

/// <summary>The request plane when every worker lives in this process: a registry of clients by instance id.</summary>
public sealed class InProcessRequestPlane : IRequestPlane
{
    private readonly ConcurrentDictionary<string, IWorkerClient> _clients = new(StringComparer.Ordinal);

    public void Add(IWorkerClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        _clients[client.Instance.InstanceId] = client;
    }

    public void Remove(string instanceId) => _clients.TryRemove(instanceId, out _);

    public IWorkerClient GetClient(WorkerInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return _clients.TryGetValue(instance.InstanceId, out var client)
            ? client
            : throw new EngineUnavailableException($"worker {instance.InstanceId} is not reachable in this process");
    }
}
