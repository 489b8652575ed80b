namespace Tandem.Bench.Workloads;

/// <summary>
/// Random prompts with normally distributed input and output lengths. With a shared prefix each prompt starts with one
/// of K fixed prefixes (request i uses prefix i mod K) followed by its own random part of the sampled input length.
/// </summary>
internal sealed class SyntheticWorkload : IWorkload
{
    private readonly PromptFactory _prompts;
    private readonly int _seed;
    private readonly int _inputLength;
    private readonly double _inputStddev;
    private readonly int _outputLength;
    private readonly double _outputStddev;
    private readonly int[][] _prefixes;

    public SyntheticWorkload(PromptFactory prompts, int seed, int inputLength, double inputStddev, int outputLength, double outputStddev, int prefixLength = 0, int numPrefixes = 1)
    {
        _prompts = prompts;
        _seed = seed;
        _inputLength = inputLength;
        _inputStddev = inputStddev;
        _outputLength = outputLength;
        _outputStddev = outputStddev;
        var prefixRandom = new Random(Seeds.Mix(seed, Seeds.Prefix));
        _prefixes = prefixLength <= 0
            ? []
            : [.. Enumerable.Range(0, numPrefixes).Select(_ =>
            {
                var units = new int[prompts.UnitsFor(prefixLength)];
                prompts.Fill(prefixRandom, units);
                return units;
            })];
    }

    public bool HasSchedule => false;

    public IEnumerable<BenchRequest> Requests()
    {
        var random = new Random(_seed);
        for (var index = 0; ; index++)
        {
            var input = Distributions.Length(random, _inputLength, _inputStddev);
            var output = Distributions.Length(random, _outputLength, _outputStddev);
            var prefix = _prefixes.Length == 0 ? [] : _prefixes[index % _prefixes.Length];
            var units = new int[prefix.Length + _prompts.UnitsFor(input)];
            prefix.CopyTo(units, 0);
            _prompts.Fill(random, units.AsSpan(prefix.Length));
            yield return _prompts.Create(index, units, output);
        }
    }
}
