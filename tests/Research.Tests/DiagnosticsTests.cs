namespace Research.Tests;

/// <summary>Active units and the KL per latent dimension: what they measure, and that a large β collapses dimensions.</summary>
public sealed class DiagnosticsTests
{
    private static float[,] Mnist2000()
    {
        var (images, _) = Mnist.Load(TestData.MnistFolder, MnistSplit.Test);
        var x = new float[2000, 784];
        for (int i = 0; i < 2000; i++) for (int j = 0; j < 784; j++) x[i, j] = images[i, j];
        return x;
    }

    [Fact]
    public void Kl_per_dimension_sums_to_the_kl_term_and_active_units_count_the_dimensions_whose_mean_moves()
    {
        var x = TestData.Uniform(6, 300, 12, binary: true);
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 12, LatentSize = 5, HiddenSizes = [16], Device = "cpu" });
        vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 30 });
        var kl = vae.KlPerDimension(x);
        Assert.Equal(5, kl.Length);
        var (mean, logVariance) = vae.Encode(x);
        double total = 0;
        for (int i = 0; i < 300; i++)
            total += GaussianKl.ToStandardNormal(Enumerable.Range(0, 5).Select(j => mean[i, j]).ToArray(), Enumerable.Range(0, 5).Select(j => logVariance[i, j]).ToArray());
        Assert.Equal(total / 300, kl.Sum(), 4);
        // Active units by hand: the sample variance of each posterior mean over the rows.
        int byHand = Enumerable.Range(0, 5).Count(j =>
        {
            var m = Enumerable.Range(0, 300).Select(i => (double)mean[i, j]).ToArray();
            double avg = m.Average();
            return m.Sum(v => (v - avg) * (v - avg)) / 299 > 0.01;
        });
        Assert.Equal(byHand, vae.ActiveUnits(x));
        Assert.Equal(5, vae.ActiveUnits(x, threshold: 0.0));
        Assert.ThrowsAny<ArgumentException>(() => vae.ActiveUnits(TestData.Uniform(1, 1, 12, binary: true)));
    }

    [Fact]
    public void A_large_beta_leaves_fewer_active_units_on_mnist()
    {
        var x = Mnist2000();
        int Active(double beta)
        {
            using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 784, LatentSize = 16, HiddenSizes = [200], Beta = beta, Device = "cpu" });
            vae.Fit(x, new TrainingOptions { Epochs = 5, BatchSize = 100 });
            return vae.ActiveUnits(x);
        }
        int plain = Active(1.0), heavy = Active(8.0);
        Assert.True(heavy < plain, $"β = 8 leaves {heavy} active units, β = 1 {plain}");
    }
}
