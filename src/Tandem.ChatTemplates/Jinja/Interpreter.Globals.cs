using System.Globalization;
using System.Text;

namespace Tandem.ChatTemplates.Jinja;

internal sealed partial class Interpreter
{
    private static readonly string[] ShortDays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    private static readonly string[] LongDays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    private static readonly string[] ShortMonths = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    private static readonly string[] LongMonths =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>The functions Hugging Face and Jinja put in every template's globals.</summary>
    private void DefineGlobals(Scope globals)
    {
        globals.Set("range", new Callable("range", (args, _) => Range(args)));
        globals.Set("namespace", new Callable("namespace", (args, keywords) =>
        {
            var ns = new Namespace();
            foreach (var arg in args)
            {
                if (arg is not IReadOnlyDictionary<string, object?> initial)
                {
                    throw Values.Error("namespace() takes keyword arguments or a dict");
                }
                foreach (var (k, v) in initial)
                {
                    ns.Attributes[k] = v;
                }
            }
            foreach (var (k, v) in keywords)
            {
                ns.Attributes[k] = v;
            }
            return ns;
        }));
        globals.Set("dict", new Callable("dict", (args, keywords) =>
        {
            var result = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var arg in args)
            {
                if (arg is not IReadOnlyDictionary<string, object?> initial)
                {
                    throw Values.Error("dict() takes keyword arguments or a dict");
                }
                foreach (var (k, v) in initial)
                {
                    result[k] = v;
                }
            }
            foreach (var (k, v) in keywords)
            {
                result[k] = v;
            }
            return result;
        }));
        globals.Set("raise_exception", new Callable("raise_exception", (args, _) =>
            throw new TemplateRuntimeException(args.Count > 0 ? Values.ToText(args[0]) : "raise_exception() was called", raisedByTemplate: true)));
        globals.Set("strftime_now", new Callable("strftime_now", (args, _) =>
            StrFTime(args.Count > 0 && args[0] is string format ? format : throw Values.Error("strftime_now() needs a format string"),
                _timeProvider.GetLocalNow().DateTime)));
    }

    private List<object?> Range(IReadOnlyList<object?> args)
    {
        long Int(object? v) => v is long l ? l : v is bool b ? (b ? 1 : 0) : throw Values.Error($"range() arguments must be integers, not {Values.TypeName(v)}");
        long start = 0, stop, step = 1;
        switch (args.Count)
        {
            case 1:
                stop = Int(args[0]);
                break;
            case 2:
                start = Int(args[0]);
                stop = Int(args[1]);
                break;
            case 3:
                start = Int(args[0]);
                stop = Int(args[1]);
                step = Int(args[2]);
                break;
            default:
                throw Values.Error($"range expected 1 to 3 arguments, got {args.Count}");
        }
        if (step == 0)
        {
            throw Values.Error("range() arg 3 must not be zero");
        }
        var count = step > 0
            ? (stop > start ? (((decimal)stop - start - 1) / step) + 1 : 0)
            : (start > stop ? (((decimal)start - stop - 1) / -step) + 1 : 0);
        count = Math.Floor(count);
        if (count > Limits.MaxListLength)
        {
            throw Values.Error($"range() of {count} items exceeds the limit of {Limits.MaxListLength}");
        }
        CheckListLength((long)count);
        var result = new List<object?>((int)count);
        for (long i = 0, v = start; i < (long)count; i++, v += step)
        {
            result.Add(v);
        }
        return result;
    }

    /// <summary>Python <c>strftime</c> for the common directives, with glibc's <c>%-d</c> (no padding) form.</summary>
    internal static string StrFTime(string format, DateTime time)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c != '%' || i + 1 >= format.Length)
            {
                sb.Append(c);
                continue;
            }
            var d = format[++i];
            var pad = true;
            if (d == '-' && i + 1 < format.Length)
            {
                pad = false;
                d = format[++i];
            }
            string Num(int value, int width) => pad ? value.ToString(new string('0', width), CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);
            var hour12 = time.Hour % 12 == 0 ? 12 : time.Hour % 12;
            sb.Append(d switch
            {
                'a' => ShortDays[(int)time.DayOfWeek],
                'A' => LongDays[(int)time.DayOfWeek],
                'b' or 'h' => ShortMonths[time.Month - 1],
                'B' => LongMonths[time.Month - 1],
                'd' => Num(time.Day, 2),
                'e' => time.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'm' => Num(time.Month, 2),
                'y' => Num(time.Year % 100, 2),
                'Y' => time.Year.ToString(CultureInfo.InvariantCulture),
                'H' => Num(time.Hour, 2),
                'I' => Num(hour12, 2),
                'M' => Num(time.Minute, 2),
                'S' => Num(time.Second, 2),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'j' => Num(time.DayOfYear, 3),
                'w' => ((int)time.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'F' => time.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'T' => time.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + d,
            });
        }
        return sb.ToString();
    }
}
