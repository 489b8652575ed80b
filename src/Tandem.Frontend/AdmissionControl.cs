namespace Tandem.Frontend;

/// <summary>Bounds the requests the frontend serves at once; beyond the bound they are answered 429 at once instead of piling up.</summary>
internal sealed class AdmissionControl(int limit)
{
    private int _inflight;

    public int Inflight => Volatile.Read(ref _inflight);

    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _inflight) <= limit)
        {
            return true;
        }
        Interlocked.Decrement(ref _inflight);
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _inflight);
}
