using Xunit.Abstractions;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;

namespace Research.Tests;

/// <summary><c>dotnet pack</c> makes the two packages with their metadata, docs, symbols and the native patch, and
/// a fresh console project outside the repository that references only the packed <c>Research</c> package
/// builds, patches its own copy of libLibTorchSharp.so and trains PCA and a VAE.</summary>
[Collection(SubprocessCollection.Name)]
public sealed class PackageTests(ITestOutputHelper log)
{
    private static readonly string Root = TestData.RepositoryRoot;

    private static string PackageVersion =>
        typeof(Pca).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

    private static XElement Nuspec(ZipArchive package)
    {
        var entry = package.Entries.Single(e => e.FullName.EndsWith(".nuspec"));
        using var stream = entry.Open();
        return XDocument.Load(stream).Root!;
    }

    private static string? Meta(XElement nuspec, string name) =>
        nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

    private static void CheckPackage(string feed, string id, string version, string[] mustContain)
    {
        var path = Path.Combine(feed, $"{id}.{version}.nupkg");
        Assert.True(File.Exists(path), $"{path} was not produced");
        using var package = ZipFile.OpenRead(path);
        var names = package.Entries.Select(e => e.FullName).ToHashSet();
        foreach (var name in mustContain) Assert.True(names.Contains(name), $"{id} lacks {name}; it has {string.Join(", ", names)}");
        var nuspec = Nuspec(package);
        Assert.Equal(version, Meta(nuspec, "version"));
        Assert.Equal("README.md", Meta(nuspec, "readme"));
        var license = nuspec.Descendants().Single(e => e.Name.LocalName == "license");
        Assert.Equal(("expression", "MIT"), ((string?)license.Attribute("type"), license.Value));
        Assert.False(string.IsNullOrWhiteSpace(Meta(nuspec, "description")), $"{id} has a description");
        Assert.False(string.IsNullOrWhiteSpace(Meta(nuspec, "authors")), $"{id} has authors");

        var symbols = Path.Combine(feed, $"{id}.{version}.snupkg");
        Assert.True(File.Exists(symbols), $"{symbols} was not produced");
        using var snupkg = ZipFile.OpenRead(symbols);
        Assert.Contains(snupkg.Entries, e => e.FullName == $"lib/net10.0/{id}.pdb");
    }

    [Fact]
    public async Task The_packed_Research_package_trains_pca_and_a_vae_in_a_fresh_console_project()
    {
        var work = Directory.CreateTempSubdirectory("research-package-");
        try
        {
            string version = PackageVersion;
            var feed = Path.Combine(work.FullName, "feed");
            var minute = TimeSpan.FromMinutes(1);
            // The solution is already built: pack its outputs.
            await Subprocess.Dotnet(Root, minute, "pack", "src/Research.Core/Research.Core.fsproj", "-c", Subprocess.Configuration, "--no-build", "-o", feed);
            await Subprocess.Dotnet(Root, minute, "pack", "src/Research/Research.csproj", "-c", Subprocess.Configuration, "--no-build", "-o", feed);

            CheckPackage(feed, "Research.Core", version,
                ["lib/net10.0/Research.Core.dll", "lib/net10.0/Research.Core.xml", "README.md",
                 "build/Research.Core.targets", "buildTransitive/Research.Core.targets"]);
            CheckPackage(feed, "Research", version, ["lib/net10.0/Research.dll", "lib/net10.0/Research.xml", "README.md"]);
            using (var core = ZipFile.OpenRead(Path.Combine(feed, $"Research.Core.{version}.nupkg")))
            {
                var patch = File.ReadAllText(Path.Combine(Root, "build", "NativeGlibcxxPatch.targets"));
                foreach (var folder in new[] { "build", "buildTransitive" })
                    using (var reader = new StreamReader(core.GetEntry($"{folder}/Research.Core.targets")!.Open()))
                        Assert.Equal(patch, reader.ReadToEnd());
                var dependencies = Nuspec(core).Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => (string?)e.Attribute("id"));
                Assert.Contains("TorchSharp-cpu", dependencies);
            }
            using (var facade = ZipFile.OpenRead(Path.Combine(feed, $"Research.{version}.nupkg")))
            {
                var dependency = Nuspec(facade).Descendants().Single(e => e.Name.LocalName == "dependency" && (string?)e.Attribute("id") == "Research.Core");
                Assert.Equal(version, (string?)dependency.Attribute("version"));
            }

            // A consumer outside the repository (no Directory.Build.* of ours), referencing only the Research package.
            // Its packages folder is private (so the freshly packed packages are extracted, never a stale copy),
            // with the shared cache as a fallback folder so TorchSharp and libtorch restore offline.
            var app = Directory.CreateDirectory(Path.Combine(work.FullName, "Consumer")).FullName;
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config><add key="globalPackagesFolder" value="{Path.Combine(work.FullName, "packages")}" /></config>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                  <fallbackPackageFolders><add key="shared" value="{Subprocess.SharedPackagesFolder}" /></fallbackPackageFolders>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "Consumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Research" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using Research;

                var rng = new Random(1);
                var x = new float[200, 16];
                for (int i = 0; i < 200; i++)
                    for (int j = 0; j < 16; j++)
                        x[i, j] = rng.NextDouble() < 0.3 ? 1f : 0f;

                var pca = Pca.Fit(x, components: 4);
                Console.WriteLine($"PCA: MSE {pca.ReconstructionError(x):F4}");

                using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 16, LatentSize = 2, HiddenSizes = [8], Device = "cpu" });
                var history = vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 50 });
                Console.WriteLine($"VAE: {history.Count} epochs, ELBO {vae.Elbo(x):F3}");

                // Research.Core comes in transitively; its Native module says which libtorch was loaded.
                foreach (var lib in Research.Core.Native.loadedLibraries()) Console.WriteLine("native: " + lib);
                """);

            var noSharedCache = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = null };
            var build = await Subprocess.DotnetWith(noSharedCache, app, TimeSpan.FromMinutes(2),
                "build", "-c", "Release", "--disable-build-servers");
            if (Subprocess.SystemNeedsGlibcxxPatch())
                Assert.Contains("Marked GLIBCXX_3.4.32 weak", build);   // the package's buildTransitive targets ran in the consumer
            var run = await Subprocess.Dotnet(app, minute, Path.Combine(app, "bin", "Release", "net10.0", "Consumer.dll"));
            log.WriteLine(run);
            Assert.Contains("PCA: MSE", run);
            Assert.Contains("VAE: 3 epochs, ELBO", run);
            var natives = run.Split('\n').Where(l => l.StartsWith("native: ")).Select(l => l["native: ".Length..].Trim()).ToList();
            Assert.Contains(natives, p => Path.GetFileName(p) == "libLibTorchSharp.so");
            Assert.All(natives, p => Assert.StartsWith(Path.Combine(app, "bin"), p));   // the consumer's own (patched) copies
        }
        finally { work.Delete(true); }
    }
}
