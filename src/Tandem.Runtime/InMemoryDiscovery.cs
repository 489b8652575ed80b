using Tandem.Abstractions;

namespace Tandem.Runtime;

/// <summary>
/// Discovery inside one process (`tandem serve`): workers register and deregister directly; readers see immutable
/// snapshots swapped atomically, exactly as they will from etcd.
/// </summary>
public sealed class InMemoryDiscovery : IDiscovery
{
    private readonly Lock _gate = new();
    private DiscoverySnapshot _current = DiscoverySnapshot.Empty;

    public DiscoverySnapshot Current => Volatile.Read(ref _current);

    public event Action<DiscoverySnapshot>? Changed;

    /// <summary>Adds or replaces the instance with the same id.</summary>
    public void Register(WorkerInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        Update(list =>
        {
            list.RemoveAll(i => i.InstanceId == instance.InstanceId);
            list.Add(instance);
        });
    }

    /// <summary>Removes the instance; no-op when it is not registered.</summary>
    public void Deregister(string instanceId) => Update(list => list.RemoveAll(i => i.InstanceId == instanceId));

    private void Update(Action<List<WorkerInstance>> change)
    {
        DiscoverySnapshot next;
        lock (_gate)
        {
            var list = _current.Instances.ToList();
            change(list);
            next = new DiscoverySnapshot(list, _current.Version + 1);
            Volatile.Write(ref _current, next);
        }
        Changed?.Invoke(next);
    }
}
