namespace Tandem.Abstractions;

/// <summary>
/// A change to the set of prefix-cached KV blocks of one worker. Event ids increase by one per event, so a consumer that
/// sees a gap knows it missed events and asks for a <see cref="KvCacheSnapshot"/>. Replaying the events in order from a
/// snapshot reproduces the worker's cached set exactly.
/// </summary>
public abstract record KvEvent(long EventId);

/// <summary>A block became cached: its KV is computed and it can be reused by any request with the same prefix.</summary>
/// <param name="BlockHash">Sequence hash (chained over the prefix).</param>
/// <param name="TokensHash">Hash of the block's own tokens.</param>
public readonly record struct KvStoredBlock(ulong BlockHash, ulong TokensHash);

/// <summary>Blocks, in prefix order, became cached; the first one's parent is <see cref="ParentHash"/> (null: it starts a sequence).</summary>
public sealed record KvBlocksStored(long EventId, ulong? ParentHash, IReadOnlyList<KvStoredBlock> Blocks) : KvEvent(EventId);

/// <summary>Blocks stopped being cached (evicted or dropped).</summary>
public sealed record KvBlocksRemoved(long EventId, IReadOnlyList<ulong> BlockHashes) : KvEvent(EventId);

/// <summary>Every cached block was dropped.</summary>
public sealed record KvCacheCleared(long EventId) : KvEvent(EventId);

/// <summary>The full cached set as of <see cref="LastEventId"/> (events after it apply on top).</summary>
public sealed record KvCacheSnapshot(long LastEventId, int BlockSize, IReadOnlyList<KvSnapshotBlock> Blocks);

/// <summary>One cached block in a snapshot.</summary>
public readonly record struct KvSnapshotBlock(ulong BlockHash, ulong? ParentHash, ulong TokensHash);
