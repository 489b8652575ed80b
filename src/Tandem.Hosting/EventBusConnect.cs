using Tandem.Nats;

namespace Tandem.Hosting;

/// <summary>Connects a process to the NATS event plane, with an error a user can act on when that fails.</summary>
internal static class EventBusConnect
{
    /// <summary>
    /// Connects to <paramref name="url"/> (each listed server tried once). The server must be reachable at start;
    /// later outages are repaired by the connection itself. Throws <see cref="IOException"/> naming the URL otherwise.
    /// </summary>
    public static async Task<NatsEventBus> ConnectAsync(string url, string name, CancellationToken cancellationToken)
    {
        try
        {
            return await NatsEventBus.ConnectAsync(new NatsOptions { Url = url, Name = name }, cancellationToken).ConfigureAwait(false);
        }
        catch (NatsConnectionException e)
        {
            throw new IOException($"cannot connect to NATS at {url}: {e.Message} (is nats-server running and reachable?)", e);
        }
    }
}
