namespace Tandem.Bench.Workloads;

/// <summary>A source of requests, in the order they are sent.</summary>
internal interface IWorkload
{
    /// <summary>Requests in order; synthetic workloads never end, traces end with their last record.</summary>
    IEnumerable<BenchRequest> Requests();

    /// <summary>True when the requests carry their own send times (trace timestamps).</summary>
    bool HasSchedule { get; }
}
