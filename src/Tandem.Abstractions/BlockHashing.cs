using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace Tandem.Abstractions;

/// <summary>
/// Identifies full KV blocks by their tokens and everything before them, the same way on every worker and router
/// (and compatible with Dynamo's KV events): tokens are u32 little-endian; a block's own hash is
/// XXH3_64(token bytes, seed); a sequence hash chains them: seq₀ = block₀, seqᵢ = XXH3_64(LE64(seqᵢ₋₁) ‖ LE64(blockᵢ), seed).
/// Equal sequence hashes mean equal prefixes. Only full blocks are hashed. The seed is 1337, or derived from a cache
/// salt so that salted requests never share blocks with others.
/// </summary>
public static class BlockHashing
{
    public const long DefaultSeed = 1337;

    /// <summary>The hash seed for a cache salt (null or empty: the default seed).</summary>
    public static long SeedFor(string? salt) =>
        string.IsNullOrEmpty(salt) ? DefaultSeed : (long)XxHash3.HashToUInt64(Encoding.UTF8.GetBytes(salt), DefaultSeed);

    /// <summary>XXH3_64 of the block's token ids as u32 little-endian.</summary>
    public static ulong TokensHash(ReadOnlySpan<int> tokens, long seed = DefaultSeed)
    {
        const int Stack = 256;
        Span<byte> bytes = tokens.Length <= Stack / 4 ? stackalloc byte[Stack] : new byte[tokens.Length * 4];
        for (var i = 0; i < tokens.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes[(i * 4)..], (uint)tokens[i]);
        }
        return XxHash3.HashToUInt64(bytes[..(tokens.Length * 4)], seed);
    }

    /// <summary>The sequence hash of a block whose own hash is <paramref name="tokensHash"/>, after a prefix whose last sequence hash is <paramref name="parent"/> (null for the first block).</summary>
    public static ulong Chain(ulong? parent, ulong tokensHash, long seed = DefaultSeed)
    {
        if (parent is null)
        {
            return tokensHash;
        }
        Span<byte> pair = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(pair, parent.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(pair[8..], tokensHash);
        return XxHash3.HashToUInt64(pair, seed);
    }

    /// <summary>
    /// Hashes of every full block of <paramref name="tokens"/>, starting after <paramref name="skipBlocks"/> already-hashed
    /// blocks whose last sequence hash is <paramref name="parent"/>. Writes (sequence hash, tokens hash) pairs to the lists.
    /// </summary>
    public static void HashFullBlocks(
        ReadOnlySpan<int> tokens, int blockSize, long seed, int skipBlocks, ulong? parent,
        List<ulong> sequenceHashes, List<ulong>? tokensHashes = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentNullException.ThrowIfNull(sequenceHashes);
        var full = tokens.Length / blockSize;
        for (var b = skipBlocks; b < full; b++)
        {
            var own = TokensHash(tokens.Slice(b * blockSize, blockSize), seed);
            var seq = Chain(parent, own, seed);
            sequenceHashes.Add(seq);
            tokensHashes?.Add(own);
            parent = seq;
        }
    }

    /// <summary>Sequence hashes of every full block of <paramref name="tokens"/> (a router's view of a request).</summary>
    public static ulong[] SequenceHashes(ReadOnlySpan<int> tokens, int blockSize, long seed = DefaultSeed)
    {
        var hashes = new List<ulong>(tokens.Length / Math.Max(blockSize, 1));
        HashFullBlocks(tokens, blockSize, seed, 0, null, hashes);
        return [.. hashes];
    }
}
