using Tandem.Abstractions;
using Tandem.Engine.Sampling;

namespace Tandem.Engine.Tests.Sampling;

public class SamplingParamsTests
{
    [Fact]
    public void Defaults_AreNeutral_AndValid()
    {
        var p = new SamplingParams();
        Assert.Equal(1f, p.Temperature);
        Assert.Equal(0, p.TopK);
        Assert.Equal(1f, p.TopP);
        Assert.Equal(0f, p.MinP);
        Assert.Equal(1f, p.RepetitionPenalty);
        Assert.Null(p.Seed);
        p.Validate();
        Assert.True(SamplingParams.Greedy.IsGreedy);
    }

    public static TheoryData<SamplingParams, string> Invalid() => new()
    {
        { new SamplingParams { Temperature = -0.1f }, "temperature" },
        { new SamplingParams { Temperature = float.NaN }, "temperature" },
        { new SamplingParams { TopK = -1 }, "top_k" },
        { new SamplingParams { TopP = 0f }, "top_p" },
        { new SamplingParams { TopP = 1.01f }, "top_p" },
        { new SamplingParams { MinP = -0.01f }, "min_p" },
        { new SamplingParams { MinP = 1.5f }, "min_p" },
        { new SamplingParams { RepetitionPenalty = 0f }, "repetition_penalty" },
        { new SamplingParams { PresencePenalty = 2.5f }, "presence_penalty" },
        { new SamplingParams { FrequencyPenalty = -3f }, "frequency_penalty" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Validate_OutOfRange_ThrowsNamingTheSetting(SamplingParams p, string setting)
    {
        var ex = Assert.Throws<ArgumentException>(p.Validate);
        Assert.StartsWith(setting, ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new Sampler(p));
    }

    [Fact]
    public void Validate_BoundaryValues_AreAccepted()
    {
        new SamplingParams { Temperature = 0f, TopP = 1f, MinP = 1f, PresencePenalty = -2f, FrequencyPenalty = 2f, RepetitionPenalty = 0.01f }.Validate();
        new SamplingParams { MinP = 0f, TopP = 1e-6f }.Validate();
    }
}
