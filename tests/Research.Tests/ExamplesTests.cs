using Xunit.Abstractions;
namespace Research.Tests;

/// <summary>Both examples run end to end on real MNIST with their smallest budget (<c>--quick</c>).</summary>
[Collection(SubprocessCollection.Name)]
public sealed class ExamplesTests(ITestOutputHelper log)
{
    private static readonly string Root = TestData.RepositoryRoot;

    private static void AssertComparisonTable(string output)
    {
        Assert.Contains("PCA vs VAE on MNIST: 2000 training images, 20 latent dimensions, 1 epoch(s)", output);
        Assert.Matches(@"PCA, 20 comps\s+0\.0\d+", output);
        Assert.Matches(@"VAE, N_z = 20\s+0\.\d+\s+-\d+\.\d", output);
    }

    [Fact]
    public async Task The_csharp_example_compares_pca_and_a_vae()
    {
        // Built with the solution, in this test assembly's configuration.
        var dll = Path.Combine(Root, "examples", "CSharpVae", "bin", Subprocess.Configuration, "net10.0", "CSharpVae.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build the solution first (dotnet fsi build.fsx build).");
        var work = Directory.CreateTempSubdirectory("research-example-cs-");
        try
        {
            var output = await Subprocess.Dotnet(work.FullName, TimeSpan.FromMinutes(2), dll, "--quick", "--data", TestData.MnistFolder);
            log.WriteLine(output);
            AssertComparisonTable(output);
        }
        finally { work.Delete(true); }
    }

    [Fact]
    public async Task The_fsharp_script_runs_in_fsharp_interactive_on_a_linux_x64_publish_of_the_core()
    {
        // The script's instructions publish for linux-x64, the platform this repository builds and tests on.
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.OSArchitecture != System.Runtime.InteropServices.Architecture.X64) return;
        var work = Directory.CreateTempSubdirectory("research-example-fs-");
        try
        {
            // What the script's header tells users to run, into a scratch lib/ (with scratch obj/ and bin/, so the
            // repository's restore of src/Research.Core is left as the solution build made it).
            await Subprocess.Dotnet(Root, TimeSpan.FromMinutes(3), "publish", "src/Research.Core/Research.Core.fsproj",
                "-c", "Release", "-r", "linux-x64", "--self-contained", "false", "-o", Path.Combine(work.FullName, "lib"),
                $"-p:BaseIntermediateOutputPath={Path.Combine(work.FullName, "obj")}/", $"-p:BaseOutputPath={Path.Combine(work.FullName, "bin")}/",
                "--disable-build-servers");
            var script = Path.Combine(work.FullName, "fsharp-vae.fsx");
            File.Copy(Path.Combine(Root, "examples", "fsharp-vae.fsx"), script);
            var output = await Subprocess.Dotnet(work.FullName, TimeSpan.FromMinutes(3), "fsi", script,
                "--quick", "--data", TestData.MnistFolder);
            log.WriteLine(output);
            Assert.Contains($"libtorch 2.10.0.0 from {Path.Combine(work.FullName, "lib")}", output);
            AssertComparisonTable(output);
            Assert.Matches(@"On 100 test images: ELBO -\d+\.\d \(KL term \d+\.\d\) <= importance-weighted bound, K = 50: -\d+\.\d nats", output);
        }
        finally { work.Delete(true); }
    }
}
