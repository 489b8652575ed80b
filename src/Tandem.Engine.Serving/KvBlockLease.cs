namespace Tandem.Engine.Serving;

/// <summary>
/// KV blocks pinned outside any running sequence, for moving KV between workers: blocks reserved for an incoming
/// transfer (<see cref="ServingEngine.TryReserveKv"/>) or kept after a prefill (<see cref="ServingEngine.PrefillAsync"/>).
/// Dispose releases them; starting a sequence from the lease (<see cref="ServingEngine.SubmitWithKv"/>) hands them
/// over instead. A lease not released by <see cref="ExpiresAt"/> is released by the engine.
/// </summary>
public sealed class KvBlockLease : IDisposable
{
    private readonly ServingEngine _owner;
    private int _state; // 0 held, 1 released or handed over

    internal KvBlockLease(ServingEngine owner, long id, int[] blocks, int tokens, int cachedBlocks, DateTime expiresAt)
    {
        _owner = owner;
        Id = id;
        BlockArray = blocks;
        Tokens = tokens;
        CachedBlocks = cachedBlocks;
        ExpiresAt = expiresAt;
    }

    public long Id { get; }

    /// <summary>Physical block ids in token order: position p lives in Blocks[p / block_size].</summary>
    public IReadOnlyList<int> Blocks => BlockArray;

    /// <summary>Token positions the blocks hold (or will hold once filled).</summary>
    public int Tokens { get; }

    /// <summary>Leading blocks taken from the prefix cache: already filled and shared, so never written by an import.</summary>
    public int CachedBlocks { get; }

    public DateTime ExpiresAt { get; }

    public bool IsHeld => Volatile.Read(ref _state) == 0;

    internal int[] BlockArray { get; }

    /// <summary>The KV pool's physical ids of blocks <c>[first, first+count)</c> of the lease.</summary>
    public void CopyPhysicalBlocks(int first, int count, Span<int> destination) => BlockArray.AsSpan(first, count).CopyTo(destination);

    /// <summary>Marks the lease as no longer held; true for the one caller that gets to release or adopt its blocks.</summary>
    internal bool TryClaim() => Interlocked.Exchange(ref _state, 1) == 0;

    public void Dispose() => _owner.ReleaseLease(this);
}

/// <summary>The outcome of a prefill that keeps its KV: the first generated token and the blocks holding the prompt's KV.</summary>
public sealed record PrefillResult(Abstractions.TokenOutput FirstToken, KvBlockLease? Kv);
