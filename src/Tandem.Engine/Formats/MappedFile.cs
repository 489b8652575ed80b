using System.IO.MemoryMappedFiles;
using Tandem.Engine.Models;

namespace Tandem.Engine.Formats;

/// <summary>A whole file mapped read-only into memory; the pointer stays valid until disposed.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private bool _disposed;

    private MappedFile(string path, MemoryMappedFile? file, MemoryMappedViewAccessor? view, byte* pointer, long length)
    {
        Path = path;
        _file = file;
        _view = view;
        Pointer = pointer;
        Length = length;
    }

    public string Path { get; }

    /// <summary>First byte of the file (null for an empty file).</summary>
    public byte* Pointer { get; }

    public long Length { get; }

    /// <summary>
    /// Maps <paramref name="path"/> and parses it. The parser owns the mapping when it succeeds; on failure the
    /// mapping is released and any unexpected exception becomes a <see cref="ModelFormatException"/>, so hostile
    /// files never surface as IndexOutOfRange/Overflow exceptions.
    /// </summary>
    public static T OpenAndParse<T>(string path, string formatName, Func<MappedFile, T> parse)
    {
        ArgumentNullException.ThrowIfNull(path);
        var map = Open(path);
        try
        {
            return parse(map);
        }
        catch (ModelFormatException)
        {
            map.Dispose();
            throw;
        }
        catch (Exception e)
        {
            map.Dispose();
            throw new ModelFormatException(path, $"malformed {formatName} file: {e.Message}", e);
        }
    }

    /// <summary>Maps <paramref name="path"/>; I/O failures become <see cref="ModelFormatException"/>.</summary>
    public static MappedFile Open(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFormatException(path, "file not found");
        }
        MemoryMappedFile? file = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var length = stream.Length;
            if (length == 0)
            {
                stream.Dispose();
                return new MappedFile(path, null, null, null, 0);
            }
            file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            return new MappedFile(path, file, view, p + view.PointerOffset, length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            view?.Dispose();
            file?.Dispose();
            throw new ModelFormatException(path, $"cannot map file: {e.Message}", e);
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _file?.Dispose();
    }
}
