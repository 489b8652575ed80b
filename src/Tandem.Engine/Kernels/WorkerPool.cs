using System.Runtime.ExceptionServices;

namespace Tandem.Engine.Kernels;

/// <summary>
/// A tiny fork-join pool: <c>helpers</c> dedicated background threads that park on their own
/// <see cref="ManualResetEventSlim"/> (which spins briefly before blocking). <see cref="Run"/> hands
/// part 0 to the calling thread and parts 1.. to the helpers, then waits; no allocation per run.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly ManualResetEventSlim[] _start;
    private readonly ManualResetEventSlim _done = new(false);
    private Action<int>? _body;
    private int _remaining;
    private ExceptionDispatchInfo? _error;
    private volatile bool _disposed;

    public WorkerPool(int helpers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(helpers);
        _threads = new Thread[helpers];
        _start = new ManualResetEventSlim[helpers];
        for (var i = 0; i < helpers; i++)
        {
            _start[i] = new ManualResetEventSlim(false);
            var index = i;
            _threads[i] = new Thread(() => Loop(index))
            {
                IsBackground = true,
                Name = $"tandem-kernel-{i + 1}",
            };
            _threads[i].Start();
        }
    }

    /// <summary>Threads that can run parts, the caller included.</summary>
    public int Parallelism => _threads.Length + 1;

    /// <summary>Runs <paramref name="body"/>(0 … parts-1) concurrently; part 0 on the caller. Not re-entrant: callers serialise.</summary>
    public void Run(Action<int> body, int parts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (parts > Parallelism)
        {
            throw new ArgumentOutOfRangeException(nameof(parts), parts, $"at most {Parallelism} parts");
        }
        if (parts <= 1)
        {
            body(0);
            return;
        }
        _body = body;
        _error = null;
        _done.Reset();
        Volatile.Write(ref _remaining, parts - 1);
        for (var i = 1; i < parts; i++)
        {
            _start[i - 1].Set();
        }
        try
        {
            body(0);
        }
        finally
        {
            _done.Wait();
            _body = null;
        }
        _error?.Throw();
    }

    private void Loop(int index)
    {
        var start = _start[index];
        while (true)
        {
            start.Wait();
            start.Reset();
            if (_disposed)
            {
                return;
            }
            try
            {
                _body!(index + 1);
            }
#pragma warning disable CA1031 // rethrown on the calling thread
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(ex), null);
            }
            finally
            {
                if (Interlocked.Decrement(ref _remaining) == 0)
                {
                    _done.Set();
                }
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var s in _start)
        {
            s.Set();
        }
        foreach (var t in _threads)
        {
            t.Join();
        }
        foreach (var s in _start)
        {
            s.Dispose();
        }
        _done.Dispose();
    }
}
