namespace Research.Tests;

/// <summary>The README's quick start is the code in <see cref="QuickStart"/>, which compiles and runs.</summary>
public sealed class ReadmeTests
{
    private static string[] QuickStartLines()
    {
        var source = File.ReadAllLines(Path.Combine(TestData.RepositoryRoot, "tests", "Research.Tests", "QuickStart.cs"));
        int begin = Array.FindIndex(source, l => l.Trim() == "// README:begin");
        int end = Array.FindIndex(source, l => l.Trim() == "// README:end");
        return source[(begin + 1)..end].Select(l => l.Length >= 8 ? l[8..] : l.Trim()).ToArray();
    }

    [Fact]
    public void The_readme_shows_the_compiled_quick_start_verbatim()
    {
        var readme = File.ReadAllText(Path.Combine(TestData.RepositoryRoot, "README.md")).Replace("\r\n", "\n");
        var block = string.Join("\n", QuickStartLines());
        Assert.Contains(block, readme);
    }

    [Fact]
    public void The_quick_start_runs_on_real_mnist()
    {
        var dir = Directory.CreateTempSubdirectory("research-quickstart-");
        var output = new StringWriter();
        var (oldDir, oldOut) = (Environment.CurrentDirectory, Console.Out);
        try
        {
            Environment.CurrentDirectory = dir.FullName;
            Console.SetOut(output);
            QuickStart.Run(TestData.MnistFolder, epochs: 1);
        }
        finally
        {
            Console.SetOut(oldOut);
            Environment.CurrentDirectory = oldDir;
        }
        try
        {
            Assert.Contains("PCA, 20 components: test MSE", output.ToString());
            Assert.Contains("VAE: test ELBO", output.ToString());
            Assert.True(File.Exists(Path.Combine(dir.FullName, "vae.model")));
        }
        finally { dir.Delete(true); }
    }
}
