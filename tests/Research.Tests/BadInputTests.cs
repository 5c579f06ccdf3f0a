namespace Research.Tests;

/// <summary>Every bad input of the API contract raises the named exception before any work, and leaves the model as it was.</summary>
public sealed class BadInputTests
{
    private static VariationalAutoencoder SmallVae(string device = "cpu") =>
        new(new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5], Device = device });

    private static Autoencoder SmallAe() =>
        new(new AutoencoderOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [4], Device = "cpu" });

    [Fact]
    public void Shape_mismatch_names_both_sizes_and_leaves_the_model_unchanged()
    {
        using var vae = SmallVae();
        var probe = TestData.Uniform(1, 4, 6);
        var before = vae.Reconstruct(probe);
        var ex = Assert.ThrowsAny<ArgumentException>(() => vae.Fit(TestData.Uniform(2, 10, 7)));
        Assert.Contains("7", ex.Message);
        Assert.Contains("6", ex.Message);
        Assert.Equal(before, vae.Reconstruct(probe));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Non_finite_data_is_refused(float bad)
    {
        using var ae = SmallAe();
        var x = TestData.Uniform(3, 5, 6);
        x[3, 2] = bad;
        var ex = Assert.ThrowsAny<ArgumentException>(() => ae.Fit(x));
        Assert.Contains("row 3", ex.Message);
        Assert.ThrowsAny<ArgumentException>(() => Pca.Fit(x, 2));
    }

    [Fact]
    public void Bernoulli_data_outside_the_unit_interval_is_refused()
    {
        using var vae = SmallVae();
        var x = TestData.Uniform(4, 5, 6);
        x[1, 4] = 1.5f;
        var ex = Assert.ThrowsAny<ArgumentException>(() => vae.Fit(x));
        Assert.Contains("[0, 1]", ex.Message);
        using var gaussian = new VariationalAutoencoder(new VaeOptions
        { InputSize = 6, LatentSize = 2, HiddenSizes = [5], Likelihood = Likelihood.Gaussian, Device = "cpu" });
        gaussian.Fit(x, new TrainingOptions { Epochs = 1 });  // a Gaussian decoder takes any finite data
    }

    [Fact]
    public void Empty_data_is_refused()
    {
        using var ae = SmallAe();
        Assert.ThrowsAny<ArgumentException>(() => ae.Fit(new float[0, 6]));
        Assert.ThrowsAny<ArgumentException>(() => Pca.Fit(new float[0, 6], 1));
        Assert.Throws<ArgumentNullException>(() => ae.Encode((float[,])null!));
    }

    [Fact]
    public void Non_positive_sizes_and_counts_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new VariationalAutoencoder(new VaeOptions { InputSize = 0, LatentSize = 2 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VariationalAutoencoder(new VaeOptions { InputSize = 6, LatentSize = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Autoencoder(new AutoencoderOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [0] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Autoencoder(new AutoencoderOptions { InputSize = 6, LatentSize = 7 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VariationalAutoencoder(new VaeOptions { InputSize = 6, LatentSize = 2, Samples = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Pca.Fit(TestData.Uniform(5, 10, 6), 0));
        using var vae = SmallVae();
        var x = TestData.Uniform(6, 8, 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.Fit(x, new TrainingOptions { Epochs = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.Fit(x, new TrainingOptions { BatchSize = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.Fit(x, new TrainingOptions { LearningRate = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.Sample(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.Elbo(x, samples: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.LogLikelihood(x, importanceSamples: 0));
    }

    [Fact]
    public void Unknown_device_is_refused()
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => SmallVae("tpu"));
        Assert.Contains("tpu", ex.Message);
        Assert.ThrowsAny<ArgumentException>(() => SmallVae("cuda:x"));
    }

    [Fact]
    public void Cuda_without_a_cuda_build_is_a_clear_error()
    {
        if (TorchSharp.torch.cuda.is_available()) return;  // on a GPU machine "cuda" is valid: DeviceTests cover it
        var ex = Assert.ThrowsAny<ArgumentException>(() => SmallVae("cuda"));
        Assert.Contains("CUDA", ex.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_model_of_this_kind_or_is_cut_short_is_invalid_data()
    {
        var dir = Directory.CreateTempSubdirectory("research-tests-");
        try
        {
            var aePath = Path.Combine(dir.FullName, "ae.ckpt");
            using (var ae = SmallAe()) ae.Save(aePath);
            var ex = Assert.Throws<InvalidDataException>(() => VariationalAutoencoder.Load(aePath, "cpu"));
            Assert.Contains("autoencoder", ex.Message);
            var bytes = File.ReadAllBytes(aePath);
            var cut = Path.Combine(dir.FullName, "cut.ckpt");
            File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
            Assert.Throws<InvalidDataException>(() => Autoencoder.Load(cut, "cpu"));
            var text = Path.Combine(dir.FullName, "text.ckpt");
            File.WriteAllText(text, "not a model");
            Assert.Throws<InvalidDataException>(() => Autoencoder.Load(text, "cpu"));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Mismatched_kl_spans_are_refused()
    {
        Assert.ThrowsAny<ArgumentException>(() => GaussianKl.ToStandardNormal([1f, 2f], [0f]));
        Assert.ThrowsAny<ArgumentException>(() => GaussianKl.ToStandardNormal([float.NaN], [0f]));
    }

    [Fact]
    public void Use_after_dispose_throws_ObjectDisposedException()
    {
        var vae = SmallVae();
        vae.Dispose();
        Assert.Throws<ObjectDisposedException>(() => vae.Sample(1));
        Assert.Throws<ObjectDisposedException>(() => vae.Fit(TestData.Uniform(1, 3, 6)));
    }
}
