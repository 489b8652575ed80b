namespace Tandem.Transfer.Tests;

/// <summary>A private shared-memory directory per test (under /dev/shm when there is one), deleted afterwards.</summary>
public abstract class SharedMemoryTestBase : IDisposable
{
    protected SharedMemoryTestBase()
    {
        var root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        ShmDirectory = Path.Combine(root, $"tandem-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(ShmDirectory);
        ShmOptions = new KvTransferOptions { SharedMemoryDirectory = ShmDirectory };
    }

    protected string ShmDirectory { get; }

    protected KvTransferOptions ShmOptions { get; }

    /// <summary>Staging segments in the directory now.</summary>
    protected string[] Segments => Directory.GetFiles(ShmDirectory, "tandem-kv-*");

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            Directory.Delete(ShmDirectory, recursive: true);
        }
    }
}
