using Xunit.Abstractions;
using System.Text;
using System.Text.RegularExpressions;

namespace Research.Tests;

/// <summary>Every fenced code block in docs/ and README.md is compiled and run, so the documentation cannot rot:
/// the ```csharp blocks become methods of one generated console program built against the repository's
/// projects, the ```fsharp blocks become modules of one generated script run by <c>dotnet fsi</c>. A block
/// preceded by <c>&lt;!-- docs-test: compile-only --&gt;</c> is compiled (type-checked) but not run, for code
/// that trains on all of MNIST. Blocks run in file order with a scratch working folder that holds a
/// <c>data</c> link to the repository's data/ (so <c>data/mnist</c> works as in the repository root).</summary>
[Collection(SubprocessCollection.Name)]
public sealed class DocsTests(ITestOutputHelper log)
{
    private const string CompileOnlyMarker = "<!-- docs-test: compile-only -->";
    private static readonly string Root = TestData.RepositoryRoot;

    /// <summary>A fenced block: where it is, its info string, its lines, and whether it only compiles.</summary>
    internal sealed record Block(string File, int Line, string Language, string[] Code, bool CompileOnly)
    {
        public string Name => $"{File}:{Line}";
    }

    /// <summary>README.md and every Markdown file under docs/, relative to the repository root.</summary>
    internal static IEnumerable<string> DocumentFiles() =>
        new[] { "README.md" }.Concat(Directory.GetFiles(Path.Combine(Root, "docs"), "*.md", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(Root, p)).Order());

    internal static List<Block> Blocks(string relativePath)
    {
        var lines = File.ReadAllLines(Path.Combine(Root, relativePath));
        var blocks = new List<Block>();
        for (int i = 0; i < lines.Length; i++)
        {
            var open = Regex.Match(lines[i], @"^(\s*)```\s*([^\s`]*)\s*$");   // a fence, possibly indented (in a list)
            if (!open.Success) continue;
            int start = i + 1, end = start;
            while (end < lines.Length && lines[end].Trim() != "```") end++;
            Assert.True(end < lines.Length, $"{relativePath}:{i + 1}: the code block is never closed");
            int previous = i - 1;
            while (previous >= 0 && lines[previous].Trim() == "") previous--;
            bool compileOnly = previous >= 0 && lines[previous].Trim() == CompileOnlyMarker;
            int indent = open.Groups[1].Value.Length;
            var code = lines[start..end].Select(l => l.Length >= indent && l[..indent].Trim() == "" ? l[indent..] : l.TrimStart()).ToArray();
            blocks.Add(new Block(relativePath, start + 1, open.Groups[2].Value, code, compileOnly));
            i = end;
        }
        return blocks;
    }

    private static List<Block> AllBlocks(string language) =>
        DocumentFiles().SelectMany(Blocks).Where(b => b.Language == language).ToList();

    /// <summary>A scratch folder whose data/ is the repository's, so blocks can say "data/mnist".</summary>
    private static DirectoryInfo ScratchWithData(string prefix)
    {
        var work = Directory.CreateTempSubdirectory(prefix);
        Directory.CreateSymbolicLink(Path.Combine(work.FullName, "data"), Path.Combine(Root, "data"));
        _ = TestData.MnistFolder;   // fails early, with the fetch command, when MNIST is missing
        return work;
    }

    [Fact]
    public void Every_code_block_says_its_language_and_the_promised_documents_exist()
    {
        foreach (var doc in new[] { "quickstart-csharp.md", "quickstart-fsharp.md", "aevb-equations.md", "pca-vs-autoencoders.md", "troubleshooting.md" })
            Assert.True(File.Exists(Path.Combine(Root, "docs", doc)), $"docs/{doc} is missing");
        // Code in any other language would escape the compile-and-run tests below (the python blocks of
        // docs/pytorch.md are run by PyTorchTests).
        var allowed = new HashSet<string> { "csharp", "fsharp", "python", "sh", "text", "xml" };
        var blocks = DocumentFiles().SelectMany(Blocks).ToList();
        Assert.All(blocks, b => Assert.True(allowed.Contains(b.Language),
            $"{b.Name}: a code block must be tagged {string.Join(", ", allowed)} (csharp and fsharp are compiled and run), not '{b.Language}'"));
        Assert.All(blocks.Where(b => b.Language is "python" or "sh" or "text" or "xml"), b => Assert.False(b.CompileOnly, $"{b.Name}: only csharp/fsharp blocks compile"));
        Assert.All(blocks.Where(b => b.Language == "python"), b => Assert.True(b.File == Path.Combine("docs", "pytorch.md"),
            $"{b.Name}: python blocks are run only in docs/pytorch.md"));
        Assert.True(blocks.Count(b => b.Language == "csharp") >= 5, "the docs show C#");
        Assert.True(blocks.Count(b => b.Language == "fsharp") >= 5, "the docs show F#");
    }

    [Fact]
    public void Relative_links_in_the_docs_point_to_files_that_exist()
    {
        foreach (var doc in DocumentFiles())
        {
            var folder = Path.GetDirectoryName(Path.Combine(Root, doc))!;
            foreach (Match m in Regex.Matches(File.ReadAllText(Path.Combine(Root, doc)), @"\]\(([^)#\s]+)(#[^)]*)?\)"))
            {
                var target = m.Groups[1].Value;
                if (target.Contains("://") || target.StartsWith("mailto:")) continue;
                var path = Path.GetFullPath(Path.Combine(folder, target));
                Assert.True(File.Exists(path) || Directory.Exists(path), $"{doc}: the link '{target}' points to nothing ({path})");
            }
        }
    }

    [Fact]
    public async Task The_csharp_blocks_compile_against_the_repository_and_run()
    {
        var blocks = AllBlocks("csharp");
        var work = ScratchWithData("research-docs-cs-");
        try
        {
            var project = Directory.CreateDirectory(Path.Combine(work.FullName, "DocBlocks")).FullName;
            // Outside the repository, so the GLIBCXX patch is imported by hand (packages carry it as buildTransitive).
            File.WriteAllText(Path.Combine(project, "DocBlocks.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                  </PropertyGroup>
                  <ItemGroup>
                    <ProjectReference Include="{Path.Combine(Root, "src", "Research", "Research.csproj")}" />
                  </ItemGroup>
                  <Import Project="{Path.Combine(Root, "build", "NativeGlibcxxPatch.targets")}" />
                </Project>
                """);
            File.WriteAllText(Path.Combine(project, "Program.cs"), CSharpProgram(blocks));

            await Subprocess.Dotnet(project, TimeSpan.FromMinutes(3), "build", "-c", Subprocess.Configuration,
                "-p:BuildProjectReferences=false", "--disable-build-servers");
            var output = await Subprocess.Dotnet(work.FullName, TimeSpan.FromMinutes(3),
                Path.Combine(project, "bin", Subprocess.Configuration, "net10.0", "DocBlocks.dll"));
            log.WriteLine(output);
            foreach (var b in blocks.Where(b => !b.CompileOnly)) Assert.Contains("=== ran " + b.Name, output);
            Assert.Contains("=== all blocks ran", output);
        }
        finally { work.Delete(true); }
    }

    /// <summary>One program: each block is a method (its using directives hoisted to the top, #line pointing
    /// back into the Markdown file), and Main runs the blocks that are not compile-only, in order.</summary>
    internal static string CSharpProgram(IReadOnlyList<Block> blocks)
    {
        var usings = new SortedSet<string>(StringComparer.Ordinal);
        var methods = new StringBuilder();
        var calls = new StringBuilder();
        var types = new StringBuilder();
        for (int k = 0; k < blocks.Count; k++)
        {
            var b = blocks[k];
            bool isAsync = b.Code.Any(l => Regex.IsMatch(l, @"\bawait\b"));
            methods.AppendLine($"    // {b.Name}{(b.CompileOnly ? " (compile-only)" : "")}");
            methods.AppendLine($"    internal static {(isAsync ? "async Task" : "void")} Block{k}()");
            methods.AppendLine("    {");
            // One #line directive, then every line (hoisted using directives left blank), so compiler errors
            // point into the Markdown file.
            methods.AppendLine($"#line {b.Line} \"{Path.Combine(Root, b.File)}\"");
            // Type declarations at the end of a block (a class at column 0, with its doc comment and attributes)
            // cannot live in a method: they go to the file's top level, with their own #line.
            var code = b.Code.ToList();
            int firstType = code.FindIndex(l => Regex.IsMatch(l, @"^((public|internal|sealed|static|abstract|partial|file)\s+)*(class|record|struct|interface)\s"));
            if (firstType >= 0)
            {
                while (firstType > 0 && (code[firstType - 1].StartsWith("///") || code[firstType - 1].StartsWith("["))) firstType--;
                types.AppendLine($"#line {b.Line + firstType} \"{Path.Combine(Root, b.File)}\"");
                foreach (var line in code.Skip(firstType)) types.AppendLine(line);
                types.AppendLine("#line default");
                code = code.Take(firstType).ToList();
            }
            foreach (var line in code)
            {
                if (Regex.IsMatch(line, @"^using\s+(static\s+)?[\w.]+(\s*=\s*[\w.<>, ]+)?\s*;"))
                {
                    usings.Add(line.Trim());
                    methods.AppendLine();
                    continue;
                }
                methods.AppendLine(line);
            }
            methods.AppendLine("#line default");
            methods.AppendLine("    }");
            if (!b.CompileOnly)
                calls.AppendLine($"        Console.WriteLine(\"=== running {b.Name}\"); {(isAsync ? "await " : "")}Block{k}(); Console.WriteLine(\"=== ran {b.Name}\");");
        }
        return $$"""
            // Generated by Research.Tests.DocsTests from the ```csharp blocks of README.md and docs/.
            {{string.Join("\n", usings)}}

            internal static class DocBlocks
            {
            {{methods}}
                private static async Task Main()
                {
            {{calls}}
                    Console.WriteLine("=== all blocks ran");
                    await Task.CompletedTask;
                }
            }

            {{types}}
            """;
    }

    [Fact]
    public async Task The_fsharp_blocks_run_in_fsharp_interactive()
    {
        var blocks = AllBlocks("fsharp");
        var work = ScratchWithData("research-docs-fs-");
        try
        {
            var script = Path.Combine(work.FullName, "docblocks.fsx");
            File.WriteAllText(script, FSharpScript(blocks, AppContext.BaseDirectory));
            var output = await Subprocess.Dotnet(work.FullName, TimeSpan.FromMinutes(3), "fsi", script);
            log.WriteLine(output);
            foreach (var b in blocks.Where(b => !b.CompileOnly)) Assert.Contains("=== ran " + b.Name, output);
            Assert.Contains("=== all blocks ran", output);
        }
        finally { work.Delete(true); }
    }

    /// <summary>One script: each block becomes a module (compile-only ones a function that is never called),
    /// with its #r lines hoisted. References to the Research packages (<c>#r "nuget: Research…"</c>) and to
    /// Research.Core.dll and TorchSharp.dll are replaced by this test's own builds, whose patched libLibTorchSharp.so
    /// is loaded first with NativeLibrary.Load (the packages themselves are tested in F# Interactive by
    /// PackageTests and ExamplesTests).</summary>
    internal static string FSharpScript(IReadOnlyList<Block> blocks, string libFolder)
    {
        string Quote(string path) => "\"" + path.Replace("\\", "\\\\") + "\"";
        var header = new List<string>
        {
            "// Generated by Research.Tests.DocsTests from the ```fsharp blocks of README.md and docs/.",
            $"#r {Quote(Path.Combine(libFolder, "TorchSharp.dll"))}",
            $"#r {Quote(Path.Combine(libFolder, "Research.Core.dll"))}",
        };
        var body = new StringBuilder();
        body.AppendLine($"System.Runtime.InteropServices.NativeLibrary.Load({Quote(Path.Combine(libFolder, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"))}) |> ignore");
        for (int k = 0; k < blocks.Count; k++)
        {
            var b = blocks[k];
            body.AppendLine($"printfn \"=== running {b.Name}\"");
            body.AppendLine($"module Block{k} =");
            string indent = "    ";
            var code = b.Code.ToList();
            if (b.CompileOnly)
            {
                // Opens stay at module level; the rest is type-checked inside a function nobody calls.
                foreach (var open in code.Where(l => l.StartsWith("open "))) body.AppendLine(indent + open);
                body.AppendLine(indent + "let private compileOnly () =");
                indent = "        ";
                code = code.Select(l => l.StartsWith("open ") ? "" : l).ToList();
            }
            // One line directive, then every line (hoisted ones left blank), so errors point into the Markdown.
            body.AppendLine($"# {b.Line} {Quote(Path.Combine(Root, b.File))}");
            foreach (var line in code)
            {
                if (line.StartsWith("#r ") || line.StartsWith("#I ") || line.StartsWith("#load ") || line.StartsWith("#nowarn "))
                {
                    if (!Regex.IsMatch(line, @"(TorchSharp|Research\.Core)\.dll""|nuget: Research\b")) header.Add(line);
                    body.AppendLine();
                    continue;
                }
                body.AppendLine(line.Length == 0 ? "" : indent + line);
            }
            if (b.CompileOnly) body.AppendLine(indent + "()");
            body.AppendLine($"printfn \"=== ran {b.Name}\"");
        }
        body.AppendLine("printfn \"=== all blocks ran\"");
        return string.Join("\n", header) + "\n\n" + body;
    }
}
