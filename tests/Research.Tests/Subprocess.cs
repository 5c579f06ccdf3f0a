using System.Diagnostics;
using System.Text;

namespace Research.Tests;

/// <summary>The tests that build or run programs outside this process (packages, docs, examples) share one
/// collection, so they run one after another instead of fighting over the build machine's cores.</summary>
[CollectionDefinition(Name)]
public sealed class SubprocessCollection : ICollectionFixture<PackedFeed>
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Subprocess builds and runs";
}

/// <summary>Runs dotnet (or another program) to completion and returns its exit code and output.</summary>
internal static class Subprocess
{
    /// <summary>The configuration this test assembly was built in; the repository's outputs use the same one.</summary>
    public static string Configuration => AppContext.BaseDirectory.Contains("/Release/") ? "Release" : "Debug";

    /// <summary>The NuGet global packages folder the repository restored into (shared, read-only to the tests).</summary>
    public static string SharedPackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>Runs <paramref name="program"/> in <paramref name="workDir"/>; kills it and fails after
    /// <paramref name="timeout"/>. Output and error are interleaved as they arrive.</summary>
    public static async Task<(int ExitCode, string Output)> Run(
        string program, IEnumerable<string> arguments, string workDir, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo(program, arguments)
        {
            WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        // The test host runs under `dotnet test`: keep its MSBuild settings out of child builds.
        foreach (var key in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly" })
            psi.Environment.Remove(key);
        if (environment is not null)
            foreach (var (key, value) in environment)
                if (value is null) psi.Environment.Remove(key); else psi.Environment[key] = value;

        var output = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(timeout);
        try { await process.WaitForExitAsync(cancel.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{program} {string.Join(' ', arguments)}' ran past {timeout}:\n{output}");
        }
        lock (output)
        {
            output.AppendLine($"[{program} exited with {process.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s]");
            return (process.ExitCode, output.ToString());
        }
    }

    /// <summary>Runs dotnet with <paramref name="arguments"/> and fails the test unless it exits with 0.</summary>
    public static async Task<string> Dotnet(string workDir, TimeSpan timeout, params string[] arguments) =>
        await DotnetWith(null, workDir, timeout, arguments);

    /// <summary>As <see cref="Dotnet"/>, with extra environment variables (null removes one).</summary>
    public static async Task<string> DotnetWith(IReadOnlyDictionary<string, string?>? environment, string workDir, TimeSpan timeout,
                                                 params string[] arguments)
    {
        var (code, output) = await Run("dotnet", arguments, workDir, timeout, environment);
        Assert.True(code == 0, $"dotnet {string.Join(' ', arguments)} exited with {code}:\n{output}");
        return output;
    }

    /// <summary>Whether the system libstdc++ lacks GLIBCXX_3.4.32, i.e. whether builds must patch libLibTorchSharp.so
    /// (the same test as build/NativeGlibcxxPatch.targets makes).</summary>
    public static bool SystemNeedsGlibcxxPatch()
    {
        if (!OperatingSystem.IsLinux()) return false;
        string[] candidates = ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6"];
        var lib = candidates.FirstOrDefault(File.Exists);
        if (lib is null) return false;
        return !Encoding.Latin1.GetString(File.ReadAllBytes(lib)).Contains("GLIBCXX_3.4.32\0", StringComparison.Ordinal);
    }
}
