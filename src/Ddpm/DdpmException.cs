namespace Ddpm;

/// <summary>
/// An error caused by the user's input (a missing or corrupt file, a wrong format, an impossible option).
/// The message is one line that says what is wrong and where; the CLI prints it without a stack trace.
/// </summary>
public class DdpmException : Exception
{
    public DdpmException(string message) : base(message) { }
    public DdpmException(string message, Exception inner) : base(message, inner) { }
}
