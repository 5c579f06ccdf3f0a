using System.Diagnostics;

namespace Research.Tests;

/// <summary>`reproduce --quick` runs every script end to end and writes valid PNG and CSV files.</summary>
public sealed class ReproduceTests
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    [Fact]
    public async Task Quick_reproduce_writes_every_figure_and_table()
    {
        // The scripts are built with the solution, in the same configuration as this test assembly.
        var configuration = AppContext.BaseDirectory.Contains("/Release/") ? "Release" : "Debug";
        var exe = Path.Combine(TestData.RepositoryRoot, "scripts", "Reproduce", "bin", configuration, "net10.0", "Reproduce.dll");
        Assert.True(File.Exists(exe), $"{exe} is missing: build the solution first (dotnet fsi build.fsx build).");
        var work = Directory.CreateTempSubdirectory("research-reproduce-");
        try
        {
            var psi = new ProcessStartInfo("dotnet", [exe, "--data", TestData.MnistFolder, "--quick"])
            {
                WorkingDirectory = work.FullName, RedirectStandardOutput = true, RedirectStandardError = true,
            };
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));  // about 1.5 min on a quiet 2-core machine
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{await stdout}\n{await stderr}");

            var results = Path.Combine(work.FullName, "runs", "quick", "paper", "results");
            var figures = Path.Combine(work.FullName, "runs", "quick", "paper", "figures");
            foreach (var csv in new[] { "comparison.csv", "pca_explained_variance.csv" })
            {
                var lines = File.ReadAllLines(Path.Combine(results, csv));
                Assert.True(lines.Length > 1, $"{csv} has rows");
                int columns = lines[0].Split(',').Length;
                Assert.All(lines.Skip(1), l => Assert.True(l.Split(',').Length >= columns, $"{csv}: '{l}' has every column"));
            }
            Assert.StartsWith("| model |", File.ReadAllText(Path.Combine(results, "comparison.md")));
            foreach (var png in new[] { "fig4_manifold.png", "fig4_latent.png", "fig5_samples.png", "interpolation.png" })
            {
                var bytes = File.ReadAllBytes(Path.Combine(figures, png));
                Assert.True(bytes.Length > 1000, $"{png} is a real image ({bytes.Length} bytes)");
                Assert.Equal(PngSignature, bytes[..8]);
            }
        }
        finally { work.Delete(true); }
    }
}
