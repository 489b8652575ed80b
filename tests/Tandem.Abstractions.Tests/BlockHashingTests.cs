using System.Buffers.Binary;
using System.IO.Hashing;

namespace Tandem.Abstractions.Tests;

public class BlockHashingTests
{
    [Fact]
    public void SequenceHashes_FollowTheChainedXxh3Formula()
    {
        int[] tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        var hashes = BlockHashing.SequenceHashes(tokens, 4);

        // Written out independently: u32 LE token bytes, XXH3-64 seed 1337; seq_i = XXH3(LE64(seq_{i-1}) ++ LE64(block_i)).
        static ulong Block(params uint[] ids)
        {
            var bytes = new byte[ids.Length * 4];
            for (var i = 0; i < ids.Length; i++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), ids[i]);
            }
            return XxHash3.HashToUInt64(bytes, 1337);
        }
        var b0 = Block(1, 2, 3, 4);
        var b1 = Block(5, 6, 7, 8);
        var pair = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(pair, b0);
        BinaryPrimitives.WriteUInt64LittleEndian(pair.AsSpan(8), b1);
        Assert.Equal([b0, XxHash3.HashToUInt64(pair, 1337)], hashes); // the partial third block is not hashed
    }

    [Fact]
    public void SequenceHashes_EqualPrefixesShareHashesAndAnyChangePropagates()
    {
        var a = Enumerable.Range(0, 64).ToArray();
        var b = (int[])a.Clone();
        b[20] = 999; // in block 1 of 16-token blocks
        var ha = BlockHashing.SequenceHashes(a, 16);
        var hb = BlockHashing.SequenceHashes(b, 16);
        Assert.Equal(4, ha.Length);
        Assert.Equal(ha[0], hb[0]);
        for (var i = 1; i < 4; i++)
        {
            Assert.NotEqual(ha[i], hb[i]);
        }
        // Same block contents at a different position chain differently.
        var shifted = a[16..].Concat(a[..16]).ToArray();
        Assert.NotEqual(BlockHashing.SequenceHashes(shifted, 16)[1], ha[0]);
    }

    [Fact]
    public void SeedFor_SaltIsolatesAndNoSaltIsTheDefault()
    {
        Assert.Equal(1337, BlockHashing.SeedFor(null));
        Assert.Equal(1337, BlockHashing.SeedFor(""));
        Assert.NotEqual(BlockHashing.SeedFor("tenant-a"), BlockHashing.SeedFor("tenant-b"));
        var tokens = Enumerable.Range(0, 32).ToArray();
        Assert.NotEqual(BlockHashing.SequenceHashes(tokens, 16, BlockHashing.SeedFor("tenant-a"))[0], BlockHashing.SequenceHashes(tokens, 16)[0]);
    }

    [Fact]
    public void HashFullBlocks_ContinuesAnExistingChain()
    {
        var tokens = Enumerable.Range(100, 80).ToArray();
        var all = BlockHashing.SequenceHashes(tokens, 16);
        var rest = new List<ulong>();
        BlockHashing.HashFullBlocks(tokens, 16, BlockHashing.DefaultSeed, 2, all[1], rest);
        Assert.Equal(all[2..], rest);
    }
}
