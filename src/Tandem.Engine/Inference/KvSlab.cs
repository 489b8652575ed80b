using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Tandem.Engine.Inference;

/// <summary>
/// The memory of a <see cref="PagedKvCache"/>: private memory, or a file in a shared-memory directory (tmpfs) mapped into
/// this process, which a KV transport in another process of the same host maps too and copies blocks into or out of
/// directly: one copy per transfer instead of two through a staging segment.
/// </summary>
/// <remarks>
/// The shared file is allocated in full when created (posix_fallocate through .NET's preallocation): a tmpfs file that
/// is only truncated to size would fail with SIGBUS on the first page that finds the file system full, and allocating
/// up front also spares every first write to a page its fault. While the process lives it keeps the file open, which
/// holds a shared <c>flock</c>, so a sweep of the directory can tell its file from one a killed process left behind.
/// The mapping's pages are populated at once (<see cref="Abstractions.MemoryPages"/>), so no step of the engine pays a
/// page fault for its first write to a block.
/// </remarks>
public sealed unsafe class KvSlab : IDisposable
{
    /// <summary>Name prefix of shared KV pool files; the rest is <c>{pid}-{random}</c>.</summary>
    public const string FilePrefix = Abstractions.ISharedKvBlockAccess.PoolFilePrefix;

    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;

    private KvSlab(byte* pointer, long bytes, string? path, MemoryMappedFile? file, MemoryMappedViewAccessor? view)
    {
        _pointer = pointer;
        Bytes = bytes;
        SharedFile = path;
        _file = file;
        _view = view;
    }

    /// <summary>Start of the slab, 64-byte aligned.</summary>
    public byte* Start
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    public long Bytes { get; }

    /// <summary>Path of the shared file holding the slab; null for private memory.</summary>
    public string? SharedFile { get; }

    /// <summary>Private memory (not visible to other processes).</summary>
    public static KvSlab Private(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        return new KvSlab((byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64), bytes, null, null, null);
    }

    /// <summary>
    /// A slab in a new file of <paramref name="directory"/>, or null with the reason when it cannot be made (no such
    /// directory, not enough room in it, no permission): the caller then uses private memory.
    /// </summary>
    public static KvSlab? TryShared(string directory, long bytes, out string? failure)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        failure = null;
        if (!Directory.Exists(directory))
        {
            failure = $"the directory {directory} does not exist";
            return null;
        }
        var path = Path.Combine(directory, $"{FilePrefix}{Environment.ProcessId}-{Guid.NewGuid():N}");
        FileStream? stream = null;
        MemoryMappedFile? file = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            // preallocationSize reserves every byte (fallocate): a full tmpfs fails here, not as SIGBUS later.
            stream = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.ReadWrite,
                Share = FileShare.ReadWrite | FileShare.Delete,
                PreallocationSize = bytes,
            });
            stream.SetLength(bytes);
            file = MemoryMappedFile.CreateFromFile(stream, null, bytes, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            stream = null;
            view = file.CreateViewAccessor(0, bytes, MemoryMappedFileAccess.ReadWrite);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            // The engine writes every page sooner or later: map them all now (the file's pages already exist).
            Abstractions.MemoryPages.TryPopulate((IntPtr)pointer, bytes);
            // Mappings start on a page boundary, so the slab is at least 64-byte aligned.
            return new KvSlab(pointer + view.PointerOffset, bytes, path, file, view);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            view?.Dispose();
            file?.Dispose();
            stream?.Dispose();
            TryDelete(path);
            failure = e.Message;
            return null;
        }
    }

    public void Dispose()
    {
        if (_pointer == null)
        {
            return;
        }
        if (_view is null)
        {
            NativeMemory.AlignedFree(_pointer);
        }
        else
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file!.Dispose();
            TryDelete(SharedFile!);
        }
        _pointer = null;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Swept later by a KV transport on this host.
        }
    }
}
