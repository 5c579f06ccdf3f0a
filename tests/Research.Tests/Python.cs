using System.Globalization;

namespace Research.Tests;

/// <summary>Runs Python scripts for the interchange tests, which compare against NumPy and scikit-learn themselves.
/// The interpreter is Debian's /usr/bin/python3 (where .ci/run installs python3-numpy and python3-sklearn), or
/// RESEARCH_PYTHON when set.</summary>
internal static class Python
{
    /// <summary>The interpreter that runs the scripts.</summary>
    public static string Interpreter =>
        Environment.GetEnvironmentVariable("RESEARCH_PYTHON") is { Length: > 0 } p ? p : "/usr/bin/python3";

    /// <summary>Runs <paramref name="script"/> in <paramref name="workDir"/> and returns its output; fails the test,
    /// with the output, unless it exits with 0.</summary>
    public static async Task<string> Run(string script, string workDir)
    {
        Assert.True(File.Exists(Interpreter),
            $"{Interpreter} is missing: the interchange tests need Python 3 with NumPy and scikit-learn (apt-get install python3-numpy python3-sklearn, as .ci/run does)");
        var (code, output) = await Subprocess.Run(Interpreter, ["-c", script], workDir, TimeSpan.FromMinutes(2));
        Assert.True(code == 0, $"the Python script exited with {code}:\n{output}\n--- script ---\n{script}");
        return output;
    }

    /// <summary>A double printed by Python's repr, which round-trips.</summary>
    public static double ParseDouble(string text) => double.Parse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture);
}
