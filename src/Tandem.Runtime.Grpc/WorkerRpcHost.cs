using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Tandem.Abstractions;

namespace Tandem.Runtime.Grpc;

/// <summary>Where and how a <see cref="WorkerRpcHost"/> listens.</summary>
public sealed record WorkerRpcHostOptions
{
    /// <summary>An IP address or <c>localhost</c>; <c>0.0.0.0</c> listens on every interface.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port (read the bound one from <see cref="WorkerRpcHost.Url"/>).</summary>
    public int Port { get; init; }

    /// <summary>How long stopping waits for calls to end after they were cancelled.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest request message accepted (prompt tokens travel in one message).</summary>
    public int MaxReceiveMessageSize { get; init; } = 16 * 1024 * 1024;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host))
        {
            throw new ArgumentException("host must be set", nameof(Host));
        }
        if (Port is < 0 or > 65535)
        {
            throw new ArgumentException($"port must be in [0, 65535], got {Port}", nameof(Port));
        }
        if (ShutdownTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException($"shutdown timeout must be ≥ 0, got {ShutdownTimeout}", nameof(ShutdownTimeout));
        }
        if (MaxReceiveMessageSize <= 0)
        {
            throw new ArgumentException($"max receive message size must be > 0, got {MaxReceiveMessageSize}", nameof(MaxReceiveMessageSize));
        }
    }
}

/// <summary>
/// Serves one worker's request plane: Kestrel with HTTP/2 over cleartext (h2c) and the <see cref="WorkerRpcService"/>.
/// Disposing cancels the calls in flight and stops listening.
/// </summary>
public sealed class WorkerRpcHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private WorkerRpcHost(WebApplication app, WorkerRpcService service, Uri url)
    {
        _app = app;
        Service = service;
        Url = url;
    }

    /// <summary>The bound address, e.g. <c>http://127.0.0.1:40123</c>; publish it as the worker's <c>rpc</c> endpoint.</summary>
    public Uri Url { get; }

    public WorkerRpcService Service { get; }

    /// <summary>Starts serving <paramref name="worker"/>; returns once the port is bound.</summary>
    public static async Task<WorkerRpcHost> StartAsync(
        IWorkerClient worker,
        WorkerRpcHostOptions? options = null,
        WorkerDrainHandler? drain = null,
        ILoggerFactory? loggerFactory = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(worker);
        options ??= new WorkerRpcHostOptions();
        options.Validate();
        var service = new WorkerRpcService(worker, drain);

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            void Http2(ListenOptions listen) => listen.Protocols = HttpProtocols.Http2;
            if (string.Equals(options.Host, "localhost", StringComparison.OrdinalIgnoreCase))
            {
                kestrel.Listen(IPAddress.Loopback, options.Port, Http2);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(options.Host), options.Port, Http2);
            }
        });
        builder.WebHost.UseShutdownTimeout(options.ShutdownTimeout);
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }
        builder.Services.AddRoutingCore();
        builder.Services.AddGrpc(grpc => grpc.MaxReceiveMessageSize = options.MaxReceiveMessageSize);
        builder.Services.AddSingleton(service);
        var app = builder.Build();
        app.UseRouting();
        app.MapGrpcService<WorkerRpcService>();
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("the server reported no bound address");
        var bound = new Uri(address);
        var url = new Uri($"http://{(string.Equals(options.Host, "localhost", StringComparison.OrdinalIgnoreCase) ? "127.0.0.1" : bound.Host)}:{bound.Port}");
        return new WorkerRpcHost(app, service, url);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        Service.Stop();
        try
        {
            await _app.StopAsync().ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            Service.Dispose();
        }
    }
}
