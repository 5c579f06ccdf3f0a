namespace Research.Tests;

/// <summary>Small seeded data sets and the repository's MNIST folder.</summary>
internal static class TestData
{
    /// <summary>n × p values in [0, 1] (binary when <paramref name="binary"/>), from a seed.</summary>
    public static float[,] Uniform(int seed, int n, int p, bool binary = false)
    {
        var rng = new Random(seed);
        var x = new float[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                x[i, j] = binary ? (rng.NextDouble() < 0.5 ? 0f : 1f) : (float)rng.NextDouble();
        return x;
    }

    /// <summary>The repository root: the folder above the test binaries that holds Research.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Research.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Research.sln not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>data/mnist under the repository root; fails with the command to run when absent.</summary>
    public static string MnistFolder
    {
        get
        {
            var path = Path.Combine(RepositoryRoot, "data", "mnist");
            if (!File.Exists(Path.Combine(path, "t10k-images-idx3-ubyte")))
                throw new InvalidOperationException($"MNIST is not in {path}: run `dotnet fsi build.fsx data` first.");
            return path;
        }
    }

    public static float[,] Copy(float[,] a) => (float[,])a.Clone();
}
