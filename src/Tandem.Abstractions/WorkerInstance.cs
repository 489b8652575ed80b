namespace Tandem.Abstractions;

/// <summary>What a worker does with requests.</summary>
public enum WorkerRole
{
    /// <summary>Aggregated: prefill and decode in one worker.</summary>
    Both,

    /// <summary>Computes prompt KV for other workers (remote prefill / context only).</summary>
    Prefill,

    /// <summary>Generates tokens; prefills locally or asks a prefill worker.</summary>
    Decode,
}

/// <summary>
/// A live worker as discovery lists it (blueprint §5: the value stored under
/// <c>/tandem/v1/{namespace}/instances/{component}/{instance_id}</c>).
/// </summary>
public sealed record WorkerInstance
{
    public required string InstanceId { get; init; }

    public string Component { get; init; } = "worker";

    public required WorkerRole Role { get; init; }

    /// <summary>The served model name requests use.</summary>
    public required string Model { get; init; }

    /// <summary>Identifies the exact weights and KV layout; KV moves only between equal fingerprints.</summary>
    public string ModelFingerprint { get; init; } = "";

    /// <summary>Addresses by plane ("rpc", "kv", "http"); empty for in-process workers.</summary>
    public IReadOnlyDictionary<string, string> Endpoints { get; init; } = new Dictionary<string, string>();

    public int KvBlockSize { get; init; }

    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Can take a generate request from the frontend (aggregated or decode workers).</summary>
    public bool CanDecode => Role is WorkerRole.Both or WorkerRole.Decode;
}
