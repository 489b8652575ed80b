using System.Net.Security;

namespace Tandem.Nats;

/// <summary>
/// Settings of a <see cref="NatsConnection"/>; validated by <see cref="Validate"/> before connecting and used as an
/// immutable snapshot afterwards.
/// </summary>
public sealed record NatsOptions
{
    /// <summary>One server or a comma-separated list: <c>nats://host:port</c>, <c>tls://host:port</c>, optionally with <c>user:pass@</c> or <c>token@</c>.</summary>
    public string Url { get; init; } = "nats://127.0.0.1:4222";

    public string? User { get; init; }

    public string? Password { get; init; }

    /// <summary>Sent as <c>auth_token</c>; exclusive with <see cref="User"/>.</summary>
    public string? Token { get; init; }

    /// <summary>Client name shown by the server (connz).</summary>
    public string Name { get; init; } = "tandem";

    /// <summary>Upgrade to TLS after INFO (also implied by a <c>tls://</c> URL or a server that requires TLS).</summary>
    public bool Tls { get; init; }

    /// <summary>Certificate check for TLS; null uses the system's default validation.</summary>
    public RemoteCertificateValidationCallback? TlsCertificateValidation { get; init; }

    /// <summary>Whether this connection receives its own publishes on matching subscriptions.</summary>
    public bool Echo { get; init; } = true;

    /// <summary>How often the client sends PING to detect a dead connection.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Unanswered client PINGs after which the connection is considered dead and is re-established.</summary>
    public int MaxPingsOut { get; init; } = 2;

    /// <summary>First wait between reconnect attempts; doubles after each round over the server list up to <see cref="MaxReconnectWait"/>.</summary>
    public TimeSpan ReconnectWait { get; init; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan MaxReconnectWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Random extra wait (0 to this) added to each reconnect wait so that many clients do not reconnect at once.</summary>
    public TimeSpan ReconnectJitter { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Connection attempts after a loss before the connection closes for good; -1 = unbounded, 0 = never reconnect.</summary>
    public int MaxReconnectAttempts { get; init; } = -1;

    /// <summary>Bytes of commands kept while disconnected; publishing past it throws <see cref="NatsReconnectBufferFullException"/>.</summary>
    public long ReconnectBufferBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Bytes queued for a live connection above which publishers wait for the writer (back-pressure).</summary>
    public long WriteBufferBytes { get; init; } = 32 * 1024 * 1024;

    /// <summary>Time for TCP connect, INFO, TLS and the CONNECT/PING handshake together.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Time one socket write (a batch of commands) may take before the connection is considered dead.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Default for requests that do not name a timeout.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Messages buffered per subscription; when full the oldest is dropped and counted.</summary>
    public int SubscriptionCapacity { get; init; } = 65536;

    /// <summary>Largest message the parser accepts from the server.</summary>
    public int MaxPayloadBytes { get; init; } = 64 * 1024 * 1024;

    /// <summary>Add the servers a cluster announces in INFO <c>connect_urls</c> to the reconnect list.</summary>
    public bool DiscoverServers { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming every invalid setting.</summary>
    public NatsOptions Validate()
    {
        var errors = new List<string>();
        try
        {
            if (ParseServers(Url).Count == 0)
            {
                errors.Add("Url lists no server");
            }
        }
        catch (FormatException ex)
        {
            errors.Add(ex.Message);
        }
        if (User is not null && Password is null)
        {
            errors.Add("User is set without Password");
        }
        if (Token is not null && User is not null)
        {
            errors.Add("Token and User are exclusive");
        }
        if (string.IsNullOrWhiteSpace(Name))
        {
            errors.Add("Name is empty");
        }
        Positive(PingInterval, nameof(PingInterval));
        Positive(ConnectTimeout, nameof(ConnectTimeout));
        Positive(WriteTimeout, nameof(WriteTimeout));
        Positive(RequestTimeout, nameof(RequestTimeout));
        if (MaxPingsOut < 1)
        {
            errors.Add($"MaxPingsOut must be at least 1 (was {MaxPingsOut})");
        }
        if (ReconnectWait < TimeSpan.Zero || MaxReconnectWait < ReconnectWait || ReconnectJitter < TimeSpan.Zero)
        {
            errors.Add("ReconnectWait, MaxReconnectWait and ReconnectJitter must be non-negative with ReconnectWait <= MaxReconnectWait");
        }
        if (MaxReconnectAttempts < -1)
        {
            errors.Add($"MaxReconnectAttempts must be -1 (unbounded) or more (was {MaxReconnectAttempts})");
        }
        if (ReconnectBufferBytes < 0)
        {
            errors.Add($"ReconnectBufferBytes must not be negative (was {ReconnectBufferBytes})");
        }
        if (WriteBufferBytes < 64 * 1024)
        {
            errors.Add($"WriteBufferBytes must be at least 64 KiB (was {WriteBufferBytes})");
        }
        if (SubscriptionCapacity < 1)
        {
            errors.Add($"SubscriptionCapacity must be at least 1 (was {SubscriptionCapacity})");
        }
        if (MaxPayloadBytes < 1024)
        {
            errors.Add($"MaxPayloadBytes must be at least 1024 (was {MaxPayloadBytes})");
        }
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid NATS options: " + string.Join("; ", errors));
        }
        return this;

        void Positive(TimeSpan value, string name)
        {
            if (value <= TimeSpan.Zero)
            {
                errors.Add($"{name} must be positive (was {value})");
            }
        }
    }

    /// <summary>Parses the comma-separated server list; a missing port means 4222 and a missing scheme <c>nats://</c>.</summary>
    public static IReadOnlyList<NatsServerAddress> ParseServers(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var servers = new List<NatsServerAddress>();
        foreach (var part in url.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            servers.Add(NatsServerAddress.Parse(part));
        }
        return servers;
    }
}

/// <summary>One server of the list: host, port, whether TLS is asked for, and credentials embedded in the URL.</summary>
public sealed record NatsServerAddress(string Host, int Port, bool Tls, string? User = null, string? Password = null, string? Token = null)
{
    public static NatsServerAddress Parse(string url)
    {
        var text = url.Contains("://", StringComparison.Ordinal) ? url : "nats://" + url;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException($"invalid NATS server URL '{url}'");
        }
        var tls = uri.Scheme switch
        {
            "nats" => false,
            "tls" => true,
            _ => throw new FormatException($"invalid NATS server URL '{url}': scheme must be nats:// or tls://"),
        };
        string? user = null, password = null, token = null;
        if (uri.UserInfo.Length > 0)
        {
            var info = Uri.UnescapeDataString(uri.UserInfo);
            var colon = info.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                token = info;
            }
            else
            {
                user = info[..colon];
                password = info[(colon + 1)..];
            }
        }
        var host = uri.Host.Trim('[', ']');
        return new NatsServerAddress(host, uri.IsDefaultPort || uri.Port < 0 ? 4222 : uri.Port, tls, user, password, token);
    }

    public override string ToString() => $"{(Tls ? "tls" : "nats")}://{(Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port}";
}
