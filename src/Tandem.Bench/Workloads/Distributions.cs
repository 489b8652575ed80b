namespace Tandem.Bench.Workloads;

/// <summary>Seeded samplers: normal lengths clamped to at least one, gamma-distributed inter-arrival times.</summary>
internal static class Distributions
{
    /// <summary>A normal sample (Box-Muller) rounded and clamped to at least 1; exactly <paramref name="mean"/> when the stddev is 0.</summary>
    public static int Length(Random random, int mean, double stddev)
    {
        if (stddev <= 0)
        {
            return mean;
        }
        return Math.Max(1, (int)Math.Round(mean + (stddev * StandardNormal(random))));
    }

    public static double StandardNormal(Random random)
    {
        var u1 = 1.0 - random.NextDouble(); // (0, 1]
        var u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>
    /// Seconds to the next arrival for a mean rate of <paramref name="rate"/> per second: gamma with shape
    /// <paramref name="burstiness"/> and scale 1/(rate·burstiness), so the mean is always 1/rate; shape 1 is exponential
    /// (Poisson arrivals), smaller shapes give burstier traffic (variance 1/(rate²·burstiness)).
    /// </summary>
    public static double InterArrival(Random random, double rate, double burstiness) => Gamma(random, burstiness) / (rate * burstiness);

    /// <summary>A Gamma(shape, 1) sample (Marsaglia and Tsang; shapes below 1 boosted with U^(1/shape)).</summary>
    public static double Gamma(Random random, double shape)
    {
        if (shape < 1)
        {
            var u = 1.0 - random.NextDouble();
            return Gamma(random, shape + 1) * Math.Pow(u, 1.0 / shape);
        }
        var d = shape - (1.0 / 3.0);
        var c = 1.0 / Math.Sqrt(9.0 * d);
        while (true)
        {
            double x, v;
            do
            {
                x = StandardNormal(random);
                v = 1.0 + (c * x);
            }
            while (v <= 0);
            v = v * v * v;
            var u = 1.0 - random.NextDouble();
            if (Math.Log(u) < (0.5 * x * x) + d - (d * v) + (d * Math.Log(v)))
            {
                return d * v;
            }
        }
    }
}
