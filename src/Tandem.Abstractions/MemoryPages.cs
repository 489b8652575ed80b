using System.Runtime.InteropServices;

namespace Tandem.Abstractions;

/// <summary>
/// Maps every page of a shared-memory mapping into this process up front, so that the first write or read of each page
/// later does not take a page fault. On the VMs measured here a fault costs about 15 µs, so a 56 MB KV transfer into
/// pages a process never touched took 200–500 ms instead of about 5 ms (docs/benchmarks.md).
/// </summary>
public static partial class MemoryPages
{
    /// <summary>Linux <c>MADV_POPULATE_WRITE</c> (kernel 5.14 and later): fault pages in writable, without changing them.</summary>
    private const int MadvisePopulateWrite = 23;

    /// <summary>
    /// Populates <paramref name="length"/> bytes from <paramref name="start"/> (page aligned, a shared file mapping).
    /// False where the system cannot (not Linux, an older kernel, or the call failed): the pages then fault in on first use.
    /// </summary>
    public static bool TryPopulate(IntPtr start, long length)
    {
        if (!OperatingSystem.IsLinux() || length <= 0)
        {
            return false;
        }
        try
        {
            return Madvise(start, (nuint)length, MadvisePopulateWrite) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(IntPtr address, nuint length, int advice);
}
