using System.IO.MemoryMappedFiles;
using Tandem.Abstractions;

namespace Tandem.Transfer;

/// <summary>
/// A memory-mapped file in the shared-memory directory holding one transfer's KV: for layer l, K at byte
/// <c>2·l·S</c> and V at <c>(2·l+1)·S</c>, <c>S = count × FloatsPerBlockLayer × 4</c>. The client creates and owns it
/// (and deletes it on dispose, whatever the outcome); the server only opens existing segments inside its directory.
/// </summary>
internal sealed unsafe class SharedMemorySegment : IDisposable
{
    public const string FilePrefix = "tandem-kv-";

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;
    private readonly bool _owner;
    private int _disposed;

    private SharedMemorySegment(string path, long length, MemoryMappedFile file, bool owner)
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

    /// <summary>Bytes of one transfer: K and V of every layer for <paramref name="count"/> blocks.</summary>
    public static long BytesFor(KvLayout layout, int count) => 2L * layout.NumLayers * count * layout.FloatsPerBlockLayer * sizeof(float);

    /// <summary>Creates a new segment of <paramref name="length"/> bytes; fails cleanly when the directory is unavailable.</summary>
    public static SharedMemorySegment Create(string directory, long length)
    {
        if (!Directory.Exists(directory))
        {
            throw new KvTransferException($"shared memory is unavailable: the directory {directory} does not exist (use a tcp:// address instead)");
        }
        var path = System.IO.Path.Combine(directory, $"{FilePrefix}{Environment.ProcessId}-{Guid.NewGuid():N}");
        FileStream? stream = null;
        try
        {
            stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            var file = MemoryMappedFile.CreateFromFile(stream, null, Math.Max(1, length), MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            stream = null;
            return new SharedMemorySegment(path, Math.Max(1, length), file, owner: true);
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

    /// <summary>Opens a segment the peer created; refuses paths outside <paramref name="directory"/> or of the wrong size.</summary>
    public static SharedMemorySegment Open(string directory, string path, long length)
    {
        var full = System.IO.Path.GetFullPath(path);
        var root = System.IO.Path.GetFullPath(directory).TrimEnd('/') + "/";
        if (!full.StartsWith(root, StringComparison.Ordinal) || !System.IO.Path.GetFileName(full).StartsWith(FilePrefix, StringComparison.Ordinal) ||
            System.IO.Path.GetDirectoryName(full) + "/" != root)
        {
            throw new KvProtocolException(KvErrorCode.SharedMemory, $"shared-memory segment {path} is not a KV segment in {directory}");
        }
        FileStream? stream = null;
        try
        {
            stream = new FileStream(full, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            if (stream.Length != Math.Max(1, length))
            {
                throw new KvProtocolException(KvErrorCode.SharedMemory, $"shared-memory segment {path} has {stream.Length} bytes, the request needs {length}");
            }
            var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            stream = null;
            return new SharedMemorySegment(full, Math.Max(1, length), file, owner: false);
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

    /// <summary>The K (<paramref name="side"/> 0) or V (1) floats of <paramref name="layer"/>.</summary>
    public Span<float> Side(KvLayout layout, int count, int layer, int side)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
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
