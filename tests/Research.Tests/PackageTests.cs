using Xunit.Abstractions;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;

namespace Research.Tests;

/// <summary>The two packages, packed once from the solution's build into a feed in a temp folder, for every test of
/// the subprocess collection.</summary>
public sealed class PackedFeed : IAsyncLifetime
{
    /// <summary>The temp folder that holds the feed (and the consumers' scratch folders).</summary>
    public DirectoryInfo Work { get; } = Directory.CreateTempSubdirectory("research-package-");
    /// <summary>The folder of the .nupkg and .snupkg files.</summary>
    public string Feed => Path.Combine(Work.FullName, "feed");
    /// <summary>The version this build packs (that of the assemblies under test).</summary>
    public string Version { get; } =
        typeof(Pca).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];

    /// <summary>Packs src/Research.Core and src/Research (already built) into <see cref="Feed"/>.</summary>
    public async Task InitializeAsync()
    {
        var minute = TimeSpan.FromMinutes(1);
        var root = TestData.RepositoryRoot;
        // The version of the assemblies under test, not one recomputed from the working tree as it is now.
        var version = $"-p:Version={Version}";
        await Subprocess.Dotnet(root, minute, "pack", "src/Research.Core/Research.Core.fsproj", "-c", Subprocess.Configuration, "--no-build", "-o", Feed, version);
        await Subprocess.Dotnet(root, minute, "pack", "src/Research/Research.csproj", "-c", Subprocess.Configuration, "--no-build", "-o", Feed, version);
    }

    /// <summary>A fresh NuGet packages folder under <paramref name="folder"/> in which every package of the shared cache
    /// but Research and Research.Core is a link into that cache: a consumer restoring into it extracts the freshly
    /// packed Research packages (never a stale copy) and finds TorchSharp and libtorch offline.</summary>
    public static string PrivatePackagesFolder(string folder)
    {
        var packages = Directory.CreateDirectory(Path.Combine(folder, "packages")).FullName;
        foreach (var dir in Directory.GetDirectories(Subprocess.SharedPackagesFolder))
        {
            var name = Path.GetFileName(dir);
            if (name is not ("research" or "research.core")) Directory.CreateSymbolicLink(Path.Combine(packages, name), dir);
        }
        return packages;
    }

    /// <summary>Deletes the temp folder.</summary>
    public Task DisposeAsync() { Work.Delete(true); return Task.CompletedTask; }
}

/// <summary><c>dotnet pack</c> makes the two packages with their metadata, docs, symbols and the native patch; a
/// fresh console project outside the repository that references only the packed <c>Research</c> package builds,
/// patches its own copy of libLibTorchSharp.so and trains PCA and a VAE; and an F# script in F# Interactive,
/// with <c>#r "nuget: Research"</c> from the local feed and no build or publish step, does the same through the
/// library's run-time loader.</summary>
[Collection(SubprocessCollection.Name)]
public sealed class PackageTests(PackedFeed packed, ITestOutputHelper log)
{
    private static readonly string Root = TestData.RepositoryRoot;

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
        var work = Directory.CreateDirectory(Path.Combine(packed.Work.FullName, "console"));
        {
            string version = packed.Version;
            var feed = packed.Feed;
            var minute = TimeSpan.FromMinutes(1);

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
            File.WriteAllText(Path.Combine(app, "Consumer.csproj"), LoadingTests.Project($"""<PackageReference Include="Research" Version="{version}" />"""));
            // The program of LoadingTests (PCA and a small VAE, then what was loaded).
            File.WriteAllText(Path.Combine(app, "Program.cs"), LoadingTests.Program);

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
    }

    [Fact]
    public async Task An_fsharp_script_references_the_packed_package_with_r_nuget_and_trains_pca_and_a_vae()
    {
        var work = Directory.CreateDirectory(Path.Combine(packed.Work.FullName, "fsi")).FullName;
        var packages = PackedFeed.PrivatePackagesFolder(work);
        var cache = Path.Combine(work, "native-cache");
        File.WriteAllText(Path.Combine(work, "train.fsx"), $"""
            #i "nuget: {packed.Feed}"
            #r "nuget: Research, {packed.Version}"
            {LoadingTests.FSharpProgram}
            """);
        var env = new Dictionary<string, string?> { ["NUGET_PACKAGES"] = packages, [Core.LibTorchLoader.CacheVariable] = cache };
        var output = await Subprocess.DotnetWith(env, work, TimeSpan.FromMinutes(3), "fsi", "train.fsx");
        log.WriteLine(output);
        Assert.Contains($"research: {Path.Combine(packages, "research", packed.Version)}", output);
        var torchSharp = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        // /proc/self/maps names the real files, behind the links.
        LoadingTests.CheckRun(output, Path.Combine(Subprocess.SharedPackagesFolder, "libtorch-cpu-linux-x64"), torchSharp, cache);
    }

    [Fact]
    public async Task Every_state_of_the_packed_sources_gets_its_own_version_so_a_repack_is_never_shadowed_in_a_nuget_cache()
    {
        var work = Directory.CreateDirectory(Path.Combine(packed.Work.FullName, "versions")).FullName;
        var clone = Path.Combine(work, "clone");
        var minute = TimeSpan.FromMinutes(1);
        async Task Git(params string[] args)
        {
            var (code, output) = await Subprocess.Run("git", ["-c", "user.name=test", "-c", "user.email=test@example.org", .. args], clone, minute);
            Assert.True(code == 0, output);
        }
        async Task<string> Version()
        {
            var output = await Subprocess.Dotnet(clone, minute, "msbuild", "src/Research.Core/Research.Core.fsproj",
                "-t:ResearchVersionFromGit", "-getProperty:PackageVersion", "-nologo");
            return output.Split('\n')[0].Trim();
        }
        var (cloned, log) = await Subprocess.Run("git", ["clone", "--quiet", "--local", Root, clone], work, minute);
        Assert.True(cloned == 0, log);
        // The version logic of the tree under test, committed in the clone.
        foreach (var file in new[] { "build/Version.targets", "Directory.Build.targets", "Directory.Build.props" })
            File.Copy(Path.Combine(Root, file), Path.Combine(clone, file), true);
        await Git("add", "--all");
        await Git("commit", "--quiet", "--allow-empty", "-m", "the version logic under test");

        var height = int.Parse((await Subprocess.Run("git", ["rev-list", "--count", "HEAD"], clone, minute)).Output.Split('\n')[0]);
        var clean = await Version();
        Assert.Equal($"0.2.{height}", clean);

        var source = Path.Combine(clone, "src", "Research.Core", "Probability", "Gaussian.fs");
        Assert.True(File.Exists(source), $"{source} is a packed source file to change");
        File.AppendAllText(source, "\n// one change\n");
        var changed = await Version();
        Assert.Matches($@"^0\.2\.{height + 1}-dev\.[0-9a-f]{{8}}$", changed);   // after the last commit's, before the next one's
        File.AppendAllText(source, "// another change\n");
        var changedAgain = await Version();
        Assert.NotEqual(changed, changedAgain);
        File.WriteAllText(Path.Combine(clone, "docs", "notes.md"), "docs are not packed\n");
        Assert.Equal(changedAgain, await Version());

        await Git("commit", "--quiet", "-am", "next");
        Assert.Equal($"0.2.{height + 1}", await Version());
    }
}
