using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// The transports a worker knows, as one <see cref="IKvTransport"/>: each call goes to the first transport that
/// <see cref="IKvTransport.Supports"/> the address.
/// </summary>
public sealed class KvTransports : IKvTransport
{
    private readonly IKvTransport[] _transports;

    public KvTransports(IEnumerable<IKvTransport> transports)
    {
        ArgumentNullException.ThrowIfNull(transports);
        _transports = [.. transports];
        if (_transports.Any(t => t is null))
        {
            throw new ArgumentException("a transport is null", nameof(transports));
        }
    }

    public KvTransports(params IKvTransport[] transports) : this((IEnumerable<IKvTransport>)transports)
    {
    }

    public IReadOnlyList<IKvTransport> Transports => _transports;

    public bool Supports(string address) => Find(address) is not null;

    /// <summary>The transport for <paramref name="address"/>; throws <see cref="KvTransferException"/> when none handles it.</summary>
    public IKvTransport Resolve(string address) =>
        Find(address) ?? throw new KvTransferException($"no KV transport handles the address '{address}' (known: inproc://, tcp://, shm://)");

    public Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default) =>
        Resolve(destination).PushAsync(source, sourceHandle, destination, destinationHandle, first, count, cancellationToken);

    public Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default) =>
        Resolve(source).PullAsync(source, sourceHandle, destination, destinationHandle, first, count, cancellationToken);

    private IKvTransport? Find(string address)
    {
        foreach (var transport in _transports)
        {
            if (transport.Supports(address))
            {
                return transport;
            }
        }
        return null;
    }
}
