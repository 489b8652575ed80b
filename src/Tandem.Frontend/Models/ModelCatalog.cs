using System.Collections.Concurrent;

namespace Tandem.Frontend.Models;

/// <summary>The models the frontend can pre-process, by served name. Which of them can be served now is discovery's answer.</summary>
public sealed class ModelCatalog
{
    private readonly ConcurrentDictionary<string, ServedModel> _models = new(StringComparer.Ordinal);

    public void Add(ServedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _models[model.Name] = model;
    }

    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ServedModel? model) => _models.TryGetValue(name, out model);

    public IReadOnlyCollection<ServedModel> All => [.. _models.Values.OrderBy(m => m.Name, StringComparer.Ordinal)];
}
