using System.Diagnostics;

namespace Tandem.Transfer;

/// <summary>
/// The server's side of segment reuse: segments clients sent, kept mapped between transfers (keyed by path), so that a
/// reused client segment costs no new mapping or page faults here either. A mapping is dropped when its file is gone
/// (the client deleted it or was swept), when it was idle for <see cref="KvTransferOptions.IdleTimeout"/>, or when more
/// than <see cref="KvTransferOptions.MaxMappedSegments"/> are kept (least recently used first); never while in use.
/// A client keeps peers' KV pools the same way (with <c>populate</c>: every page mapped when the pool is opened).
/// </summary>
internal sealed class SharedMemoryMappings(KvTransferOptions options, bool populate = false) : IDisposable
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <summary>Mappings kept now.</summary>
    public int Count
    {
        get
        {
            lock (_entries)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>The mapping of <paramref name="path"/> (opened and checked on first use); give it back with <see cref="Release"/>.</summary>
    public Entry Acquire(string path, long length)
    {
        List<SharedMemorySegment>? drop;
        Entry? entry;
        lock (_entries)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            drop = EvictLocked(Stopwatch.GetTimestamp());
            if (_entries.TryGetValue(path, out entry) && entry.Segment.Length == length)
            {
                entry.Users++;
            }
            else
            {
                entry = null;
            }
        }
        Dispose(drop);
        if (entry is not null)
        {
            return entry;
        }
        var segment = SharedMemorySegment.Open(options.SharedMemoryDirectory, path, length, populate);
        var created = new Entry(path, segment) { Users = 1 };
        lock (_entries)
        {
            if (_disposed || options.MaxMappedSegments == 0 || _entries.ContainsKey(path))
            {
                created.Cached = false;
            }
            else
            {
                _entries[path] = created;
            }
        }
        return created;
    }

    public void Release(Entry entry)
    {
        var dispose = false;
        lock (_entries)
        {
            entry.Users--;
            entry.LastUsed = Stopwatch.GetTimestamp();
            dispose = entry.Users == 0 && (!entry.Cached || _disposed);
        }
        if (dispose)
        {
            entry.Segment.Dispose();
        }
    }

    /// <summary>Drops mappings whose file is gone or that idled too long.</summary>
    public void Evict()
    {
        List<SharedMemorySegment>? drop;
        lock (_entries)
        {
            if (_disposed)
            {
                return;
            }
            drop = EvictLocked(Stopwatch.GetTimestamp());
        }
        Dispose(drop);
    }

    private List<SharedMemorySegment>? EvictLocked(long now)
    {
        List<Entry>? drop = null;
        foreach (var entry in _entries.Values)
        {
            if (entry.Users == 0 && (Stopwatch.GetElapsedTime(entry.LastUsed, now) > options.IdleTimeout || !File.Exists(entry.Path)))
            {
                (drop ??= []).Add(entry);
            }
        }
        if (drop is not null)
        {
            foreach (var entry in drop)
            {
                _entries.Remove(entry.Path);
            }
        }
        // Room for one more mapping: the least recently used idle ones go.
        while (_entries.Count >= Math.Max(1, options.MaxMappedSegments))
        {
            Entry? oldest = null;
            foreach (var entry in _entries.Values)
            {
                if (entry.Users == 0 && (oldest is null || entry.LastUsed < oldest.LastUsed))
                {
                    oldest = entry;
                }
            }
            if (oldest is null)
            {
                break;
            }
            _entries.Remove(oldest.Path);
            (drop ??= []).Add(oldest);
        }
        return drop?.ConvertAll(entry => entry.Segment);
    }

    private static void Dispose(List<SharedMemorySegment>? segments)
    {
        if (segments is not null)
        {
            foreach (var segment in segments)
            {
                segment.Dispose();
            }
        }
    }

    public void Dispose()
    {
        List<SharedMemorySegment> drop = [];
        lock (_entries)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            foreach (var entry in _entries.Values)
            {
                if (entry.Users == 0)
                {
                    drop.Add(entry.Segment);
                }
            }
            _entries.Clear();
        }
        Dispose(drop);
    }

    internal sealed class Entry(string path, SharedMemorySegment segment)
    {
        public string Path { get; } = path;

        public SharedMemorySegment Segment { get; } = segment;

        public int Users { get; set; }

        public long LastUsed { get; set; } = Stopwatch.GetTimestamp();

        /// <summary>False for a mapping used once and not kept (closed on release).</summary>
        public bool Cached { get; set; } = true;
    }
}
