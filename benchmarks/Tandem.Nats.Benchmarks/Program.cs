using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Tandem.Nats;

// Measures the NATS client against a local nats-server: publish throughput (publisher alone and with a subscriber
// on a second connection) and request-reply round-trip latency.
// Usage: dotnet run -c Release --project benchmarks/Tandem.Nats.Benchmarks -- [messages] [payload-bytes] [nats-url]
var messages = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 500_000;
var payloadBytes = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 128;
Process? server = null;
string url;
if (args.Length > 2)
{
    url = args[2];
}
else
{
    int port;
    using (var probe = new TcpListener(IPAddress.Loopback, 0))
    {
        probe.Start();
        port = ((IPEndPoint)probe.LocalEndpoint).Port;
    }
    server = Process.Start(new ProcessStartInfo("nats-server", $"-a 127.0.0.1 -p {port}") { RedirectStandardError = true, RedirectStandardOutput = true })!;
    url = $"nats://127.0.0.1:{port}";
    for (var i = 0; ; i++)
    {
        try
        {
            using var c = new TcpClient();
            await c.ConnectAsync(IPAddress.Loopback, port);
            break;
        }
        catch (SocketException) when (i < 200)
        {
            await Task.Delay(25);
        }
    }
}

try
{
    var payload = new byte[payloadBytes];
    var options = new NatsOptions { Url = url, RequestTimeout = TimeSpan.FromSeconds(30) };
    await using var pub = await NatsConnection.ConnectAsync(options);
    await using var sub = await NatsConnection.ConnectAsync(options);

    // Publish only (nobody subscribed): client formatting + socket writes + server ingestion.
    await Publish(pub, "bench.nobody", messages / 10, payload); // warm-up
    var sw = Stopwatch.StartNew();
    await Publish(pub, "bench.nobody", messages, payload);
    Report("publish only", messages, sw.Elapsed, payloadBytes);

    // Publish with a subscriber on another connection: until the last message was received.
    await using (var subscription = await sub.SubscribeAsync("bench.fanout"))
    {
        var received = Task.Run(async () =>
        {
            var n = 0;
            await foreach (var _ in subscription)
            {
                if (++n == messages)
                {
                    return n;
                }
            }
            return n;
        });
        sw.Restart();
        await Publish(pub, "bench.fanout", messages, payload);
        await received;
        Report("publish -> subscribe", messages, sw.Elapsed, payloadBytes);
        Console.WriteLine($"  subscriber dropped {subscription.Dropped}");
    }

    // Request-reply round trips, one at a time.
    await using var service = await sub.SubscribeAsync("bench.echo");
    var responder = Task.Run(async () =>
    {
        await foreach (var m in service)
        {
            await sub.PublishAsync(m.ReplyTo!, m.Payload);
        }
    });
    const int Requests = 5000;
    var latencies = new double[Requests];
    for (var i = 0; i < 500; i++)
    {
        await pub.RequestAsync("bench.echo", payload);
    }
    for (var i = 0; i < Requests; i++)
    {
        var start = Stopwatch.GetTimestamp();
        await pub.RequestAsync("bench.echo", payload);
        latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }
    Array.Sort(latencies);
    Console.WriteLine(FormattableString.Invariant($"request-reply: {Requests} sequential round trips, median {latencies[Requests / 2]:0} us, p99 {latencies[Requests * 99 / 100]:0} us"));
}
finally
{
    if (server is not null)
    {
        server.Kill();
        await server.WaitForExitAsync();
    }
}

static async Task Publish(NatsConnection connection, string subject, int count, byte[] payload)
{
    for (var i = 0; i < count; i++)
    {
        await connection.PublishAsync(subject, payload);
    }
    await connection.FlushAsync(TimeSpan.FromSeconds(60));
}

static void Report(string name, int count, TimeSpan elapsed, int payloadBytes) =>
    Console.WriteLine(FormattableString.Invariant($"{name}: {count} x {payloadBytes} B in {elapsed.TotalSeconds:0.00} s = {count / elapsed.TotalSeconds:0} msgs/s ({count * (double)payloadBytes / elapsed.TotalSeconds / 1e6:0.0} MB/s)"));
