using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Tandem.Bench.Metrics;
using Tandem.Bench.Workloads;

namespace Tandem.Bench.Http;

/// <summary>
/// Sends one benchmark request to an OpenAI-compatible server and measures it. Every request has its own timeout
/// (a linked token source); a timeout and an outer cancellation are told apart in the record.
/// </summary>
internal sealed class OpenAiClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly BenchOptions _options;
    private readonly TimeProvider _time;
    private readonly Uri _endpoint;

    public OpenAiClient(BenchOptions options, TimeProvider time, int maxConnections)
    {
        _options = options;
        _time = time;
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = Math.Max(1, maxConnections),
            ConnectTimeout = options.Timeout < TimeSpan.FromSeconds(30) ? options.Timeout : TimeSpan.FromSeconds(30),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
        };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        _endpoint = EndpointUri(options.Url, options.Endpoint);
    }

    public static Uri EndpointUri(Uri baseUrl, BenchEndpoint endpoint)
    {
        var text = baseUrl.ToString().TrimEnd('/');
        if (!text.EndsWith("/v1", StringComparison.Ordinal))
        {
            text += "/v1";
        }
        return new Uri(text + (endpoint == BenchEndpoint.Chat ? "/chat/completions" : "/completions"));
    }

    /// <summary>The JSON body of <paramref name="request"/>.</summary>
    public byte[] Body(BenchRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>(request.Text?.Length + 256 ?? (request.TokenIds!.Length * 6) + 256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("model", _options.Model);
            if (_options.Endpoint == BenchEndpoint.Chat)
            {
                json.WriteStartArray("messages");
                json.WriteStartObject();
                json.WriteString("role", "user");
                json.WriteString("content", request.Text ?? string.Join(' ', request.TokenIds!));
                json.WriteEndObject();
                json.WriteEndArray();
            }
            else if (request.TokenIds is { } ids)
            {
                json.WriteStartArray("prompt");
                foreach (var id in ids)
                {
                    json.WriteNumberValue(id);
                }
                json.WriteEndArray();
            }
            else
            {
                json.WriteString("prompt", request.Text);
            }
            json.WriteNumber("max_tokens", request.OutputTokens);
            if (!_options.NoExtensions)
            {
                json.WriteNumber("min_tokens", request.OutputTokens);
                json.WriteBoolean("ignore_eos", true);
            }
            json.WriteBoolean("stream", _options.Stream);
            if (_options.Stream)
            {
                json.WriteStartObject("stream_options");
                json.WriteBoolean("include_usage", true);
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Sends <paramref name="request"/>; never throws for request failures (they become error records).</summary>
    public async Task<RequestRecord> SendAsync(BenchRequest request, long originTimestamp, CancellationToken cancellationToken)
    {
        var measurement = new Measurement(request, _time, _time.GetTimestamp(), originTimestamp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new ByteArrayContent(Body(request)) };
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(_options.Stream ? "text/event-stream" : "application/json"));
            if (!string.IsNullOrEmpty(_options.ApiKey))
            {
                message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.ApiKey);
            }
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var body = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
                return measurement.Fail($"http_{(int)response.StatusCode}", $"HTTP {(int)response.StatusCode}: {Shorten(body)}");
            }
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
            return _options.Stream
                ? await ReadStreamAsync(stream, measurement, timeout.Token).ConfigureAwait(false)
                : await ReadBodyAsync(stream, measurement, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return measurement.Fail("cancelled", "cancelled");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return measurement.Fail("timeout", $"no complete response within {_options.Timeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException e)
        {
            return measurement.Fail("connection", e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message);
        }
        catch (IOException e)
        {
            return measurement.Fail(measurement.Chunks > 0 ? "stream_truncated" : "connection", e.Message);
        }
    }

    private async Task<RequestRecord> ReadStreamAsync(Stream stream, Measurement measurement, CancellationToken cancellationToken)
    {
        var parser = new SseParser();
        var events = new List<string>();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (true)
            {
                var read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return measurement.Finish(truncated: !measurement.Finished);
                }
                var now = _time.GetTimestamp();
                events.Clear();
                parser.Push(buffer.AsSpan(0, read), events);
                foreach (var data in events)
                {
                    if (data == "[DONE]")
                    {
                        return measurement.Finish(truncated: false);
                    }
                    if (measurement.OnEvent(data, now, _options.Endpoint) is { } failure)
                    {
                        return failure;
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task<RequestRecord> ReadBodyAsync(Stream stream, Measurement measurement, CancellationToken cancellationToken)
    {
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory, cancellationToken).ConfigureAwait(false);
        var text = Encoding.UTF8.GetString(memory.GetBuffer(), 0, (int)memory.Length);
        return measurement.OnEvent(text, _time.GetTimestamp(), _options.Endpoint, whole: true) ?? measurement.Finish(truncated: false);
    }

    internal static string Shorten(string text) => text.Length <= 300 ? text.Trim() : text[..300].Trim() + "…";

    public void Dispose() => _http.Dispose();

    /// <summary>The state of one request while its response arrives.</summary>
    private sealed class Measurement(BenchRequest request, TimeProvider time, long startTimestamp, long originTimestamp)
    {
        private readonly List<double> _itl = [];
        private long _firstTimestamp;
        private long _lastTimestamp;
        private int _usageOutput = -1;
        private int _usageInput = -1;

        public int Chunks { get; private set; }

        public bool Finished { get; private set; }

        /// <summary>
        /// Takes one event's JSON (or, with <paramref name="whole"/>, a non-streamed response: no chunk times, tokens from usage
        /// only); returns a failure record when the server reported an error or sent something unreadable.
        /// </summary>
        public RequestRecord? OnEvent(string data, long timestamp, BenchEndpoint endpoint, bool whole = false)
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(data);
            }
            catch (JsonException e)
            {
                return Fail("bad_response", $"unreadable JSON from the server ({e.Message}): {Shorten(data)}");
            }
            using (document)
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    return Fail("bad_response", $"expected a JSON object: {Shorten(data)}");
                }
                if (root.TryGetProperty("error", out var error) && error.ValueKind != JsonValueKind.Null)
                {
                    var text = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var m) ? m.ToString() : error.ToString();
                    return Fail(whole || Chunks == 0 ? "server_error" : "stream_error", Shorten(text));
                }
                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                {
                    if (usage.TryGetProperty("completion_tokens", out var c) && c.TryGetInt32(out var completion))
                    {
                        _usageOutput = completion;
                    }
                    if (usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out var prompt))
                    {
                        _usageInput = prompt;
                    }
                }
                if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array)
                {
                    foreach (var choice in choices.EnumerateArray())
                    {
                        if (!whole && HasContent(choice, endpoint, whole))
                        {
                            OnContent(timestamp);
                        }
                        if (choice.TryGetProperty("finish_reason", out var finish) && finish.ValueKind == JsonValueKind.String)
                        {
                            Finished = true;
                        }
                        break; // n = 1: only the first choice is measured
                    }
                }
            }
            return null;
        }

        private static bool HasContent(JsonElement choice, BenchEndpoint endpoint, bool whole)
        {
            if (endpoint == BenchEndpoint.Completions)
            {
                return choice.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String && text.GetString()!.Length > 0;
            }
            if (!choice.TryGetProperty(whole ? "message" : "delta", out var delta) || delta.ValueKind != JsonValueKind.Object)
            {
                return false;
            }
            foreach (var name in (ReadOnlySpan<string>)["content", "reasoning_content", "reasoning"])
            {
                if (delta.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString()!.Length > 0)
                {
                    return true;
                }
            }
            return false;
        }

        private void OnContent(long timestamp)
        {
            if (Chunks == 0)
            {
                _firstTimestamp = timestamp;
            }
            else
            {
                _itl.Add(time.GetElapsedTime(_lastTimestamp, timestamp).TotalMilliseconds);
            }
            _lastTimestamp = timestamp;
            Chunks++;
        }

        public RequestRecord Finish(bool truncated)
        {
            if (truncated)
            {
                return Fail("stream_truncated", $"the stream ended without [DONE] after {Chunks} chunks");
            }
            var end = time.GetTimestamp();
            var e2e = time.GetElapsedTime(startTimestamp, end).TotalMilliseconds;
            double? ttft = Chunks > 0 && _firstTimestamp != 0 ? time.GetElapsedTime(startTimestamp, _firstTimestamp).TotalMilliseconds : null;
            var output = _usageOutput >= 0 ? _usageOutput : Chunks;
            return Base() with
            {
                Success = true,
                InputTokens = _usageInput >= 0 ? _usageInput : request.PromptTokens,
                OutputTokens = output,
                UsageReported = _usageOutput >= 0,
                TtftMs = ttft,
                ItlMs = [.. _itl],
                TpotMs = RequestRecord.Tpot(ttft, e2e, output),
                E2eMs = e2e,
            };
        }

        public RequestRecord Fail(string kind, string message) => Base() with
        {
            Success = false,
            ErrorKind = kind,
            Error = message,
            OutputTokens = Chunks,
            E2eMs = time.GetElapsedTime(startTimestamp).TotalMilliseconds,
        };

        private RequestRecord Base() => new()
        {
            Index = request.Index,
            StartMs = time.GetElapsedTime(originTimestamp, startTimestamp).TotalMilliseconds,
            InputTokens = request.PromptTokens,
            RequestedOutputTokens = request.OutputTokens,
            Chunks = Chunks,
        };
    }
}
