using Tandem.Abstractions;
using Tandem.Engine.Serving;

namespace Tandem.Worker;

/// <summary>
/// A worker hosting one serving engine, reachable through <see cref="IWorkerClient"/>. In `tandem serve` the frontend
/// calls it directly (in-process request plane); separate worker processes put a network service in front of it.
/// </summary>
public sealed class EngineWorker : IWorkerClient, IDisposable
{
    private readonly ServingEngine _engine;
    private readonly bool _ownsEngine;

    public EngineWorker(ServingEngine engine, WorkerInstance instance, bool ownsEngine = true)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(instance);
        _engine = engine;
        _ownsEngine = ownsEngine;
        Instance = instance with { KvBlockSize = engine.BlockSize };
    }

    public WorkerInstance Instance { get; }

    public ServingEngine Engine => _engine;

    public IAsyncEnumerable<TokenOutput> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken = default)
    {
        if (Instance.Role == WorkerRole.Prefill)
        {
            throw new InvalidRequestException($"worker {Instance.InstanceId} is a prefill worker and does not generate");
        }
        // Validation and admission happen at submission, so overload and bad requests surface before any token.
        return _engine.SubmitAsync(request, cancellationToken);
    }

    public ValueTask<EngineStats> GetStatsAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(_engine.GetStats());

    public void Dispose()
    {
        if (_ownsEngine)
        {
            _engine.Dispose();
        }
    }
}
