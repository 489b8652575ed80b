using System.Collections.Concurrent;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// Picks the transport for an advertised address (<see cref="KvTransferServer.AdvertisedAddress"/>,
/// <c>tcp://host:port?shm=ID</c>): shared memory when the peer's shared-memory domain ID is this process's own (same
/// host, same /dev/shm), TCP otherwise (no ID, another ID, or shared memory unusable here). When shared memory fails in a
/// way that says the peer cannot reach our segments (error code 6), that peer gets TCP from then on and the transfer is
/// retried once over TCP (a retry writes the same bytes into the same blocks).
/// </summary>
public sealed class SameHostKvTransport(TcpKvTransport tcp, SharedMemoryKvTransport sharedMemory) : IKvTransport
{
    private const string Query = "?shm=";

    private readonly ConcurrentDictionary<string, bool> _sharedMemoryBroken = new(StringComparer.Ordinal);

    /// <summary><paramref name="tcpAddress"/> with <c>?shm=<paramref name="domainId"/></c> appended when there is one.</summary>
    public static string Advertise(string tcpAddress, string? domainId) =>
        string.IsNullOrEmpty(domainId) ? tcpAddress : tcpAddress + Query + domainId;

    /// <summary>The TCP address and the shared-memory domain ID (null when none) of an advertised address.</summary>
    public static (string TcpAddress, string? DomainId) Parse(string address)
    {
        var at = address.IndexOf(Query, StringComparison.Ordinal);
        return at < 0 ? (address, null) : (address[..at], address[(at + Query.Length)..]);
    }

    /// <summary>The address a transfer to <paramref name="address"/> uses: <c>shm://host:port</c> or <c>tcp://host:port</c>.</summary>
    public string Route(string address)
    {
        var (tcpAddress, domain) = Parse(address);
        return domain is not null && sharedMemory.DomainId == domain && !_sharedMemoryBroken.ContainsKey(tcpAddress)
            ? SharedMemoryKvTransport.Scheme + tcpAddress[TcpKvTransport.Scheme.Length..]
            : tcpAddress;
    }

    public bool Supports(string address) => tcp.Supports(address);

    public async Task PushAsync(IKvBlockAccess source, long sourceHandle, string destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        var route = Route(destination);
        if (!sharedMemory.Supports(route))
        {
            await tcp.PushAsync(source, sourceHandle, route, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
            return;
        }
        try
        {
            await sharedMemory.PushAsync(source, sourceHandle, route, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
        }
        catch (KvProtocolException e) when (e.Code == KvErrorCode.SharedMemory)
        {
            _sharedMemoryBroken[Parse(destination).TcpAddress] = true;
            await tcp.PushAsync(source, sourceHandle, Parse(destination).TcpAddress, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task PullAsync(string source, long sourceHandle, IKvBlockAccess destination, long destinationHandle, int first, int count, CancellationToken cancellationToken = default)
    {
        var route = Route(source);
        if (!sharedMemory.Supports(route))
        {
            await tcp.PullAsync(route, sourceHandle, destination, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
            return;
        }
        try
        {
            await sharedMemory.PullAsync(route, sourceHandle, destination, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
        }
        catch (KvProtocolException e) when (e.Code == KvErrorCode.SharedMemory)
        {
            _sharedMemoryBroken[Parse(source).TcpAddress] = true;
            await tcp.PullAsync(Parse(source).TcpAddress, sourceHandle, destination, destinationHandle, first, count, cancellationToken).ConfigureAwait(false);
        }
    }
}
