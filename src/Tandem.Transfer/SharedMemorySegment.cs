using System.IO.MemoryMappedFiles;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// A memory-mapped file in the shared-memory directory that carries KV between two processes of one host. For a
/// transfer of <c>count</c> blocks, layer l has K at byte <c>2·l·S</c> and V at <c>(2·l+1)·S</c>,
/// <c>S = count × FloatsPerBlockLayer × 4</c>; a segment may be larger than one transfer needs (segments are reused).
/// The client creates and owns it (and deletes it on dispose); the server only opens existing segments inside its
/// directory. While a process has a segment open it holds a shared <c>flock</c> on the file (.NET's FileShare), so
/// <see cref="SweepOrphans"/> can tell a live segment from one left behind by a crashed process.
/// </summary>
internal sealed unsafe class SharedMemorySegment : IDisposable
{
    public const string FilePrefix = "tandem-kv-";

    /// <summary>The file holding the id of the shared-memory domain (see <see cref="DomainId"/>).</summary>
    public const string DomainFile = "tandem-shm-domain";

    private static readonly TimeSpan OrphanMinAge = TimeSpan.FromSeconds(30);

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;
    private readonly bool _owner;
    private int _disposed;

    private SharedMemorySegment(string path, long length, MemoryMappedFile file, bool owner, bool populate = false)
    {
        Path = path;
        Length = length;
        _file = file;
        _owner = owner;
        try
        {
            _view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _pointer = pointer + _view.PointerOffset;
            if (populate)
            {
                MemoryPages.TryPopulate((IntPtr)pointer, length);
            }
        }
        catch
        {
            _view?.Dispose();
            _file.Dispose();
            throw;
        }
    }

    public string Path { get; }

    public long Length { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Bytes of one transfer: K and V of every layer for <paramref name="count"/> blocks (at least 1).</summary>
    public static long BytesFor(KvLayout layout, int count) => Math.Max(1, 2L * layout.NumLayers * count * layout.FloatsPerBlockLayer * sizeof(float));

    /// <summary>Creates a new segment of <paramref name="length"/> bytes; fails cleanly when the directory is unavailable.</summary>
    public static SharedMemorySegment Create(string directory, long length)
    {
        if (!Directory.Exists(directory))
        {
            throw new KvTransferException($"shared memory is unavailable: the directory {directory} does not exist (use a tcp:// address instead)");
        }
        length = Math.Max(1, length);
        var path = System.IO.Path.Combine(directory, $"{FilePrefix}{Environment.ProcessId}-{Guid.NewGuid():N}");
        FileStream? stream = null;
        try
        {
            stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            var file = MemoryMappedFile.CreateFromFile(stream, null, length, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            stream = null;
            return new SharedMemorySegment(path, length, file, owner: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stream?.Dispose();
            TryDelete(path);
            throw new KvTransferException($"shared memory is unavailable: cannot create a {length}-byte segment in {directory}: {e.Message}", e);
        }
        catch
        {
            stream?.Dispose();
            TryDelete(path);
            throw;
        }
    }

    /// <summary>
    /// Opens a segment the peer created, mapping all of its <paramref name="length"/> bytes; refuses paths outside
    /// <paramref name="directory"/>, files not named like a KV segment, and files whose size is not <paramref name="length"/>.
    /// With <paramref name="populate"/> every page is mapped now (<see cref="MemoryPages"/>), for a mapping kept for many
    /// transfers.
    /// </summary>
    public static SharedMemorySegment Open(string directory, string path, long length, bool populate = false)
    {
        var full = System.IO.Path.GetFullPath(path);
        var root = System.IO.Path.GetFullPath(directory).TrimEnd('/') + "/";
        if (!full.StartsWith(root, StringComparison.Ordinal) || !IsKvFile(System.IO.Path.GetFileName(full)) ||
            System.IO.Path.GetDirectoryName(full) + "/" != root)
        {
            throw new KvProtocolException(KvErrorCode.SharedMemory, $"shared-memory segment {path} is not a KV segment in {directory}");
        }
        FileStream? stream = null;
        try
        {
            stream = new FileStream(full, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length != length)
            {
                throw new KvProtocolException(KvErrorCode.SharedMemory, $"shared-memory segment {path} has {stream.Length} bytes, the request declares {length}");
            }
            var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            stream = null;
            return new SharedMemorySegment(full, length, file, owner: false, populate);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KvProtocolException(KvErrorCode.SharedMemory, $"cannot open shared-memory segment {path} (shm:// needs both ends on the same host): {e.Message}", e);
        }
        finally
        {
            stream?.Dispose();
        }
    }

    /// <summary>
    /// Deletes the KV segments in <paramref name="directory"/> that no process has open (left behind by a process that
    /// was killed): a segment is orphaned when it is older than 30 s and an exclusive lock on it can be taken. Returns how many were deleted.
    /// </summary>
    public static int SweepOrphans(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return 0;
        }
        var deleted = 0;
        string[] files;
        try
        {
            files = [.. Directory.GetFiles(directory, FilePrefix + "*"), .. Directory.GetFiles(directory, ISharedKvBlockAccess.PoolFilePrefix + "*")];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
        foreach (var file in files)
        {
            try
            {
                // A file just created may not be locked yet by its creator.
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(file) < OrphanMinAge)
                {
                    continue;
                }
                // FileShare.None takes an exclusive flock: it fails while a live process holds the segment open.
                using var probe = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                File.Delete(file);
                deleted++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // in use, or already gone
            }
        }
        return deleted;
    }

    /// <summary>
    /// An id shared by every process that sees the same <paramref name="directory"/> (the same tmpfs): read from
    /// <see cref="DomainFile"/>, created once with a random value. Two workers can use shared memory with each other
    /// exactly when their ids are equal — on one host but in containers with separate /dev/shm mounts they differ,
    /// which a boot id or host name would not tell. Null when the directory is unusable.
    /// </summary>
    public static string? DomainId(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return null;
        }
        var path = System.IO.Path.Combine(directory, DomainFile);
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                // O_EXCL creation: exactly one process writes the id; the others read it.
                using (var created = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
                {
                    var id = Guid.NewGuid().ToString("N");
                    created.Write(System.Text.Encoding.ASCII.GetBytes(id));
                    return id;
                }
            }
            catch (IOException) when (File.Exists(path))
            {
                if (ReadDomainId(path) is { } existing)
                {
                    return existing;
                }
                Thread.Sleep(10); // being written by the process that created it
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
        return null;
    }

    private static string? ReadDomainId(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return text.Length == 32 && text.All(char.IsAsciiHexDigitLower) ? text : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary><paramref name="floats"/> floats at <paramref name="byteOffset"/> (a peer's KV pool mapped whole).</summary>
    public Span<float> Floats(long byteOffset, int floats)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (byteOffset < 0 || floats < 0 || byteOffset + ((long)floats * sizeof(float)) > Length)
        {
            throw new KvProtocolException(KvErrorCode.SharedMemory, $"{floats} floats at byte {byteOffset} lie outside the {Length}-byte mapping of {Path}");
        }
        return new Span<float>(_pointer + byteOffset, floats);
    }

    /// <summary>Staging segments (<see cref="FilePrefix"/>) and KV pools (<see cref="ISharedKvBlockAccess.PoolFilePrefix"/>).</summary>
    private static bool IsKvFile(string name) =>
        name.StartsWith(FilePrefix, StringComparison.Ordinal) || name.StartsWith(ISharedKvBlockAccess.PoolFilePrefix, StringComparison.Ordinal);

    /// <summary>The K (<paramref name="side"/> 0) or V (1) floats of <paramref name="layer"/> for a transfer of <paramref name="count"/> blocks.</summary>
    public Span<float> Side(KvLayout layout, int count, int layer, int side)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var floats = count * layout.FloatsPerBlockLayer;
        var offset = (2L * layer + side) * floats * sizeof(float);
        if (offset + (long)floats * sizeof(float) > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(layer));
        }
        return new Span<float>(_pointer + offset, floats);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        if (_owner)
        {
            TryDelete(Path);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
