using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Research.Tests;

/// <summary>Round trips, determinism and the closed forms of the facade.</summary>
public sealed class ModelTests
{
    [Fact]
    public void Save_then_Load_round_trips_exactly()
    {
        var dir = Directory.CreateTempSubdirectory("research-tests-");
        try
        {
            var x = TestData.Uniform(7, 64, 10, binary: true);
            using var vae = new VariationalAutoencoder(new VaeOptions
            { InputSize = 10, LatentSize = 3, HiddenSizes = [8, 6], KlEstimator = KlEstimator.MonteCarlo, Beta = 0.5, Seed = 3, Device = "cpu" });
            vae.Fit(x, new TrainingOptions { Epochs = 2, BatchSize = 16 });
            var path = Path.Combine(dir.FullName, "vae.ckpt");
            vae.Save(path);
            using var loaded = VariationalAutoencoder.Load(path, "cpu");
            Assert.Equal(vae.Options with { HiddenSizes = [] }, loaded.Options with { HiddenSizes = [] });
            Assert.Equal(vae.Options.HiddenSizes, loaded.Options.HiddenSizes);
            Assert.Equal(vae.Encode(x).Mean, loaded.Encode(x).Mean);
            Assert.Equal(vae.Sample(5, seed: 2), loaded.Sample(5, seed: 2));
            Assert.Equal(vae.Elbo(x, 3, 1), loaded.Elbo(x, 3, 1));

            using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 10, LatentSize = 4, Linear = true, Device = "cpu" });
            ae.Fit(x, new TrainingOptions { Epochs = 1 });
            var aePath = Path.Combine(dir.FullName, "ae.ckpt");
            ae.Save(aePath);
            ae.Save(aePath);  // overwriting an existing file is fine
            using var aeLoaded = Autoencoder.Load(aePath, "cpu");
            Assert.Equal(ae.Reconstruct(x), aeLoaded.Reconstruct(x));
            Assert.True(aeLoaded.Options.Linear);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void The_same_seed_gives_the_same_history()
    {
        var x = TestData.Uniform(8, 200, 12, binary: true);
        double[] Run()
        {
            using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 12, LatentSize = 2, HiddenSizes = [10], Seed = 5, Device = "cpu" });
            return vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 32, Seed = 9 }).Select(r => r.TrainLoss).ToArray();
        }
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void Progress_and_validation_are_reported_every_epoch()
    {
        var x = TestData.Uniform(9, 100, 12, binary: true);
        var reports = new List<EpochReport>();
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 12, LatentSize = 2, HiddenSizes = [10], Device = "cpu" });
        var history = vae.Fit(x, new TrainingOptions
        {
            Epochs = 3, BatchSize = 30, Validation = TestData.Uniform(10, 20, 12, binary: true),
            Progress = new SynchronousProgress(reports.Add),
        });
        Assert.Equal(3, history.Count);
        Assert.Equal(history, reports);
        Assert.All(history, r => Assert.NotNull(r.ValidationLoss));
        Assert.Equal([100L, 200L, 300L], history.Select(r => r.ExamplesSeen));
    }

    [Property(MaxTest = 200)]
    public bool Kl_matches_the_closed_form(NormalFloat[] mu, NormalFloat[] logVar)
    {
        int d = Math.Min(mu.Length, logVar.Length);
        if (d == 0) return true;
        var m = mu.Take(d).Select(v => (float)Math.Clamp(v.Get, -10, 10)).ToArray();
        var lv = logVar.Take(d).Select(v => (float)Math.Clamp(v.Get, -10, 10)).ToArray();
        double expected = 0;
        for (int i = 0; i < d; i++) expected += 0.5 * (Math.Exp(lv[i]) + (double)m[i] * m[i] - lv[i] - 1);
        double actual = GaussianKl.ToStandardNormal(m, lv);
        return actual >= 0 && Math.Abs(actual - expected) <= 1e-9 + 1e-6 * Math.Abs(expected);
    }

    [Fact]
    public void Pca_components_are_orthonormal_and_sorted()
    {
        var x = TestData.Uniform(11, 300, 15);
        var pca = Pca.Fit(x, 5);
        Assert.Equal(5, pca.ComponentCount);
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 5; b++)
            {
                double dot = 0;
                for (int j = 0; j < 15; j++) dot += pca.Components[a, j] * pca.Components[b, j];
                Assert.Equal(a == b ? 1.0 : 0.0, dot, 1e-5);
            }
        Assert.True(pca.ExplainedVariance.Zip(pca.ExplainedVariance.Skip(1)).All(p => p.First >= p.Second));
        var codes = pca.Transform(x);
        Assert.Equal(300, codes.GetLength(0));
        Assert.Equal(15, pca.InverseTransform(codes).GetLength(1));
        Assert.True(pca.ReconstructionError(x) > 0);
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests need the reports in order, at once.</summary>
    private sealed class SynchronousProgress(Action<EpochReport> report) : IProgress<EpochReport>
    {
        public void Report(EpochReport value) => report(value);
    }
}
