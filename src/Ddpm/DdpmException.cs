namespace Ddpm;

/// <summary>
/// An error caused by the user's input (a missing or corrupt file, a wrong format, an impossible setting).
/// The message is one line that says what is wrong and where; the CLI prints it without a stack trace.
/// When the error is about one setting, <see cref="Setting"/> names it (the JSON key of a run's configuration, or
/// the parameter's snake_case name) and the message starts with that name, so a front end can put its own
/// spelling of the setting (a command-line flag) in its place.
/// </summary>
public class DdpmException : Exception
{
    /// <summary>The setting the message is about (e.g. <c>ema_decay</c>); null when it is about no single setting.</summary>
    public string? Setting { get; }

    /// <summary>With <see cref="Setting"/>: the message after the setting's name (e.g. "2: must be in [0, 1)").</summary>
    public string? Problem { get; }

    public DdpmException(string message) : base(message) { }
    public DdpmException(string message, Exception inner) : base(message, inner) { }

    private DdpmException(string setting, string problem, bool _)
        : base(problem.StartsWith(':') ? setting + problem : $"{setting} {problem}")
    {
        Setting = setting;
        Problem = problem;
    }

    /// <summary>An error about one setting: the message is "<paramref name="setting"/> <paramref name="problem"/>", e.g. "ema_decay 2: must be in [0, 1)".</summary>
    public static DdpmException ForSetting(string setting, string problem) => new(setting, problem, true);

    /// <summary>The message with its leading setting name replaced by <paramref name="spell"/>(setting), e.g. a CLI flag.</summary>
    public string MessageWithSetting(Func<string, string> spell)
    {
        ArgumentNullException.ThrowIfNull(spell);
        if (Setting is null || !Message.StartsWith(Setting, StringComparison.Ordinal)) return Message;
        return spell(Setting) + Message[Setting.Length..];
    }
}
