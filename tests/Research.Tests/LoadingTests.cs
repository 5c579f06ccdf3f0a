using Xunit.Abstractions;

namespace Research.Tests;

/// <summary>libtorch loads however a program gets the library, not only when this repository's build patched the
/// program's copy of libLibTorchSharp.so: a console project in another folder that references
/// <c>src/Research/Research.csproj</c> (what the README's quick start says to do), and a <c>dotnet publish</c> of it.
/// On a system whose libstdc++ lacks GLIBCXX_3.4.32 such a program's own copy is the unpatched one from NuGet, so
/// only the library's run-time loader (<c>LibTorchLoader</c>) can make it work. The F# Interactive case is in
/// <see cref="PackageTests"/>, beside the packages it restores.</summary>
[Collection(SubprocessCollection.Name)]
public sealed class LoadingTests(ITestOutputHelper log)
{
    /// <summary>A program that trains a small VAE and prints what the loader did and which libraries are mapped.</summary>
    internal const string Program = """
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
        Console.WriteLine("libtorch: " + TorchSharp.torch.__version__);
        Console.WriteLine("load path: " + Research.Core.Native.libTorchSharpLoadPath().ToString().ReplaceLineEndings(" "));
        foreach (var lib in Research.Core.Native.loadedLibraries()) Console.WriteLine("native: " + lib);
        """;

    /// <summary><see cref="Program"/> as F#, for scripts; it also prints where the Research assembly came from.</summary>
    internal const string FSharpProgram = """
        open Research

        let rng = System.Random 1
        let x = Array2D.init 200 16 (fun _ _ -> if rng.NextDouble() < 0.3 then 1.0f else 0.0f)
        let pca = Pca.Fit(x, components = 4)
        printfn "PCA: MSE %.4f" (pca.ReconstructionError x)
        let vae = new VariationalAutoencoder(VaeOptions(InputSize = 16, LatentSize = 2, HiddenSizes = [| 8 |], Device = "cpu"))
        let history = vae.Fit(x, TrainingOptions(Epochs = 3, BatchSize = 50))
        printfn "VAE: %d epochs, ELBO %.3f" history.Count (vae.Elbo x)
        printfn "libtorch: %s" TorchSharp.torch.__version__
        printfn "load path: %s" ((sprintf "%A" (Research.Core.Native.libTorchSharpLoadPath ())).ReplaceLineEndings " ")
        printfn "research: %s" typeof<Pca>.Assembly.Location
        for lib in Research.Core.Native.loadedLibraries () do printfn "native: %s" lib
        """;

    /// <summary>A console project's file, with <paramref name="reference"/> (a ProjectReference or PackageReference) its only item.</summary>
    internal static string Project(string reference) => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
          </PropertyGroup>
          <ItemGroup>
            {reference}
          </ItemGroup>
        </Project>
        """;

    /// <summary>A console project in a fresh folder outside the repository (no Directory.Build.* of ours above it).</summary>
    private static string OutsideProject(DirectoryInfo work)
    {
        var app = Directory.CreateDirectory(Path.Combine(work.FullName, "Outside")).FullName;
        var research = Path.Combine(TestData.RepositoryRoot, "src", "Research", "Research.csproj");
        File.WriteAllText(Path.Combine(app, "Outside.csproj"), Project($"""<ProjectReference Include="{research}" />"""));
        File.WriteAllText(Path.Combine(app, "Program.cs"), Program);
        return app;
    }

    /// <summary>Checks a run of <see cref="Program"/>: it trained, libtorch is the package's 2.10 from
    /// <paramref name="libtorchFolder"/>, and on a system that needs it the loaded libLibTorchSharp.so is a
    /// patched copy in <paramref name="cache"/>, made from the program's own unpatched one in <paramref name="original"/>,
    /// or, with <paramref name="patchedByBuild"/>, <paramref name="original"/> itself, which the build patched.</summary>
    internal static void CheckRun(string output, string libtorchFolder, string original, string cache, bool patchedByBuild = false)
    {
        Assert.Contains("PCA: MSE", output);
        Assert.Contains("VAE: 3 epochs, ELBO", output);
        Assert.Contains("libtorch: 2.10", output);
        var natives = output.Split('\n').Where(l => l.StartsWith("native: ")).Select(l => l["native: ".Length..].Trim()).ToList();
        var torchCpu = Assert.Single(natives, p => Path.GetFileName(p) == "libtorch_cpu.so");
        Assert.StartsWith(libtorchFolder, torchCpu);
        var sharp = Assert.Single(natives, p => Path.GetFileName(p) == "libLibTorchSharp.so");
        var loadPath = output.Split('\n').Single(l => l.StartsWith("load path: "));
        var systemNeedsPatch = Subprocess.SystemNeedsGlibcxxPatch();
        if (systemNeedsPatch && patchedByBuild)
        {
            Assert.Equal(original, sharp);
            Assert.Contains("PatchedByBuild", loadPath);
            Assert.False(Core.LibTorchLoader.needsPatch(Core.LibTorchLoader.NeededVersion, File.ReadAllBytes(sharp)), "the build patched it");
            Assert.Empty(Directory.Exists(cache) ? Directory.GetFileSystemEntries(cache) : []);
        }
        else if (systemNeedsPatch)
        {
            Assert.True(Core.LibTorchLoader.needsPatch(Core.LibTorchLoader.NeededVersion, File.ReadAllBytes(original)),
                $"the program's own {original} is the unpatched one, so the run-time loader is what is tested");
            Assert.StartsWith(cache, sharp);
            Assert.Contains("PatchedCopy", loadPath);
            Assert.False(Core.LibTorchLoader.needsPatch(Core.LibTorchLoader.NeededVersion, File.ReadAllBytes(sharp)), "the copy is patched");
        }
        else
        {
            Assert.Contains("NotNeeded", loadPath);
            Assert.Empty(Directory.Exists(cache) ? Directory.GetFileSystemEntries(cache) : []);
        }
    }

    [Fact]
    public async Task A_console_project_in_another_folder_that_references_the_csproj_trains_a_vae()
    {
        var work = Directory.CreateTempSubdirectory("research-outside-");
        try
        {
            var app = OutsideProject(work);
            var cache = Path.Combine(work.FullName, "native-cache");
            var env = new Dictionary<string, string?> { [Core.LibTorchLoader.CacheVariable] = cache };
            await Subprocess.Dotnet(app, TimeSpan.FromMinutes(3), "build", "-c", "Release", "--disable-build-servers");
            var output = Path.Combine(app, "bin", "Release", "net10.0");
            var first = await Subprocess.DotnetWith(env, app, TimeSpan.FromMinutes(1), Path.Combine(output, "Outside.dll"));
            log.WriteLine(first);
            var nativeFolder = Path.Combine(output, "runtimes", "linux-x64", "native");
            CheckRun(first, nativeFolder, Path.Combine(nativeFolder, "libLibTorchSharp.so"), cache);
            Assert.False(Directory.Exists(Path.Combine(output, "cpu")), "TorchSharp's fallback (copying unpatched natives into cpu/) never ran");

            // A second process finds the copy in the cache and writes nothing.
            var copies = Directory.Exists(cache) ? Directory.GetFiles(cache, "*", SearchOption.AllDirectories) : [];
            var written = copies.ToDictionary(f => f, File.GetLastWriteTimeUtc);
            var second = await Subprocess.DotnetWith(env, app, TimeSpan.FromMinutes(1), Path.Combine(output, "Outside.dll"));
            CheckRun(second, nativeFolder, Path.Combine(nativeFolder, "libLibTorchSharp.so"), cache);
            Assert.Equal(copies.Order(), (Directory.Exists(cache) ? Directory.GetFiles(cache, "*", SearchOption.AllDirectories) : []).Order());
            foreach (var (file, time) in written) Assert.Equal(time, File.GetLastWriteTimeUtc(file));
        }
        finally { work.Delete(true); }
    }

    [Fact]
    public async Task A_dotnet_publish_of_such_a_project_runs()
    {
        var work = Directory.CreateTempSubdirectory("research-publish-");
        try
        {
            var app = OutsideProject(work);
            var cache = Path.Combine(work.FullName, "native-cache");
            var published = Path.Combine(work.FullName, "published");
            await Subprocess.Dotnet(app, TimeSpan.FromMinutes(3), "publish", "-c", "Release", "-r", "linux-x64", "--self-contained", "false",
                "-o", published, "--disable-build-servers");
            var run = await Subprocess.DotnetWith(new Dictionary<string, string?> { [Core.LibTorchLoader.CacheVariable] = cache },
                work.FullName, TimeSpan.FromMinutes(1), Path.Combine(published, "Outside.dll"));
            log.WriteLine(run);
            CheckRun(run, published, Path.Combine(published, "libLibTorchSharp.so"), cache);
        }
        finally { work.Delete(true); }
    }

    /// <summary>A build output's assemblies referenced by path from F# Interactive (<c>#r ".../Research.dll"</c>, as a
    /// script beside a repository checkout does): no deps.json names the natives, and the library's loader must hand
    /// TorchSharp the build's patched libLibTorchSharp.so under runtimes/, not let it fall back to copying the NuGet
    /// cache's unpatched one into cpu/ (which does not load where libstdc++ lacks GLIBCXX_3.4.32). Before the loader
    /// did so itself, F# Interactive's own native resolver found that copy here, but not for a script that referenced
    /// scripts/Reproduce's output and started a process first. This test program's own output stands in for the build
    /// output (its managed assemblies copied, its runtimes/ linked, so that nothing is written beside the test program).</summary>
    [Fact]
    public async Task An_fsharp_script_that_references_a_build_output_by_path_trains_a_vae()
    {
        var work = Directory.CreateTempSubdirectory("research-fsi-path-");
        try
        {
            var output = Directory.CreateDirectory(Path.Combine(work.FullName, "output")).FullName;
            foreach (var dll in Directory.GetFiles(AppContext.BaseDirectory, "*.dll").Where(f => Path.GetFileName(f) != "FSharp.Core.dll"))
                File.Copy(dll, Path.Combine(output, Path.GetFileName(dll)));
            Directory.CreateSymbolicLink(Path.Combine(output, "runtimes"), Path.Combine(AppContext.BaseDirectory, "runtimes"));
            var cache = Path.Combine(work.FullName, "native-cache");
            File.WriteAllText(Path.Combine(work.FullName, "train.fsx"), $"""
                #r "{Path.Combine(output, "TorchSharp.dll")}"
                #r "{Path.Combine(output, "Research.Core.dll")}"
                #r "{Path.Combine(output, "Research.dll")}"
                {FSharpProgram}
                """);
            var run = await Subprocess.DotnetWith(new Dictionary<string, string?> { [Core.LibTorchLoader.CacheVariable] = cache },
                work.FullName, TimeSpan.FromMinutes(3), "fsi", "train.fsx");
            log.WriteLine(run);
            Assert.Contains($"research: {Path.Combine(output, "Research.dll")}", run);
            // /proc/self/maps names the real files, behind the link: this test program's natives.
            var natives = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
            CheckRun(run, natives, Path.Combine(natives, "libLibTorchSharp.so"), cache, patchedByBuild: true);
            Assert.False(Directory.Exists(Path.Combine(output, "cpu")), "TorchSharp's fallback (copying unpatched natives into cpu/) never ran");
        }
        finally { work.Delete(true); }
    }
}
