using Xunit.Abstractions;
namespace Research.Tests;

/// <summary>Both examples run end to end on real MNIST with their smallest budget (<c>--quick</c>).</summary>
[Collection(SubprocessCollection.Name)]
public sealed class ExamplesTests(PackedFeed packed, ITestOutputHelper log)
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
    public async Task The_fsharp_script_runs_in_fsharp_interactive_on_the_packed_package()
    {
        var work = Directory.CreateTempSubdirectory("research-example-fs-");
        try
        {
            // The script's folder as the repository has it (the script and its nuget.config), with the config's
            // source pointed at this run's packed feed instead of the repository's packages/.
            var folder = Directory.CreateDirectory(Path.Combine(work.FullName, "FSharpVae")).FullName;
            var script = Path.Combine(folder, "fsharp-vae.fsx");
            File.Copy(Path.Combine(Root, "examples", "FSharpVae", "fsharp-vae.fsx"), script);
            var config = File.ReadAllText(Path.Combine(Root, "examples", "FSharpVae", "nuget.config"));
            Assert.Contains("value=\"../../packages\"", config);
            File.WriteAllText(Path.Combine(folder, "nuget.config"), config.Replace("../../packages", packed.Feed));
            var env = new Dictionary<string, string?>
            {
                ["NUGET_PACKAGES"] = PackedFeed.PrivatePackagesFolder(work.FullName),
                [Core.LibTorchLoader.CacheVariable] = Path.Combine(work.FullName, "native-cache"),
            };
            var output = await Subprocess.DotnetWith(env, work.FullName, TimeSpan.FromMinutes(3), "fsi", script,
                "--quick", "--data", TestData.MnistFolder);
            log.WriteLine(output);
            Assert.Contains($"libtorch 2.10.0.0 from {Path.Combine(Subprocess.SharedPackagesFolder, "libtorch-cpu-linux-x64")}", output);
            AssertComparisonTable(output);
            Assert.Matches(@"On 100 test images: ELBO -\d+\.\d \(KL term \d+\.\d\) <= importance-weighted bound, K = 50: -\d+\.\d nats", output);
        }
        finally { work.Delete(true); }
    }
}
