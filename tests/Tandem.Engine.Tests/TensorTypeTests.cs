using Tandem.Engine.Tensors;

namespace Tandem.Engine.Tests;

public class TensorTypeTests
{
    [Theory]
    [InlineData(TensorType.F32, 64, 256)]
    [InlineData(TensorType.F16, 64, 128)]
    [InlineData(TensorType.BF16, 64, 128)]
    [InlineData(TensorType.Q8_0, 64, 68)]
    [InlineData(TensorType.Q8_0, 33, -1)]
    public void ByteSize_KnownTypes_MatchesGgmlLayout(TensorType type, long elements, long expected) =>
        Assert.Equal(expected, TensorTypes.ByteSize(type, elements));
}
