using Tandem.Engine.Tensors;

namespace Tandem.Engine.Models;

/// <summary>
/// The weight tensors of a model under their canonical (GGUF) names, e.g. <c>token_embd.weight</c>,
/// <c>blk.0.attn_q.weight</c>. Owns the memory the tensors point into (memory-mapped files) and
/// releases it on dispose.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    private readonly Dictionary<string, WeightTensor> _tensors;
    private readonly IDisposable[] _owners;
    private readonly string _path;

    public ModelWeights(string path, IEnumerable<WeightTensor> tensors, IEnumerable<IDisposable> owners)
    {
        _path = path;
        _tensors = new Dictionary<string, WeightTensor>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!_tensors.TryAdd(t.Name, t))
            {
                throw new ModelFormatException(path, $"tensor '{t.Name}' appears twice");
            }
        }
        _owners = owners.ToArray();
    }

    public IReadOnlyCollection<WeightTensor> All => _tensors.Values;

    public WeightTensor? TryGet(string name) => _tensors.GetValueOrDefault(name);

    /// <summary>Returns the tensor; a missing one is a <see cref="ModelFormatException"/>.</summary>
    public WeightTensor Get(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new ModelFormatException(_path, $"missing tensor '{name}'");

    public long TotalBytes => _tensors.Values.Sum(t => t.ByteLength);

    public void Dispose()
    {
        foreach (var o in _owners)
        {
            o.Dispose();
        }
    }
}
