namespace Research.Tests;

/// <summary>The architecture options every model takes the same way (Activation, InitStd), the paper's preset, the
/// VAE's reconstruction error, and the nonlinear autoencoder's refusal of data its sigmoid output cannot reach.</summary>
public sealed class ModelOptionsTests
{
    /// <summary>The standard deviation of every weight and bias of a model's networks.</summary>
    private static double ParameterStd(IEnumerable<TorchSharp.torch.Tensor> parameters)
    {
        var values = parameters.SelectMany(p => p.data<float>().ToArray()).Select(v => (double)v).ToArray();
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
    }

    [Fact]
    public void Paper_is_Kingma_and_Wellings_mnist_model()
    {
        var o = VaeOptions.Paper(latentSize: 10);
        Assert.Equal((784, 10, 500), (o.InputSize, o.LatentSize, o.HiddenSizes.Single()));
        Assert.Equal((Activation.Tanh, Likelihood.Bernoulli, 0.01), (o.Activation, o.Likelihood, o.InitStd!.Value));
        Assert.Equal(200, VaeOptions.Paper(3, hiddenSize: 200).HiddenSizes.Single());
        using var vae = new VariationalAutoencoder(o with { Device = "cpu" });
        // 784·500 + 500 + … values drawn from N(0, 0.01²): the sample standard deviation is 0.01 to three digits.
        Assert.InRange(ParameterStd(vae.CoreModel.Networks.Parameters.Cast<TorchSharp.torch.Tensor>()), 0.0099, 0.0101);
        Assert.IsType<TorchSharp.Modules.Tanh>(vae.CoreModel.Networks.Encoder.children().ElementAt(1));
    }

    [Fact]
    public void Activation_and_InitStd_build_the_networks_and_survive_Save_and_Load()
    {
        var dir = Directory.CreateTempSubdirectory("research-options-");
        try
        {
            var x = TestData.Uniform(3, 64, 12, binary: true);
            using var vae = new VariationalAutoencoder(new VaeOptions
            { InputSize = 12, LatentSize = 2, HiddenSizes = [16], Activation = Activation.Tanh, InitStd = 0.3, Seed = 1, Device = "cpu" });
            Assert.InRange(ParameterStd(vae.CoreModel.Networks.Parameters.Cast<TorchSharp.torch.Tensor>()), 0.25, 0.35);
            var path = Path.Combine(dir.FullName, "vae.model");
            vae.Save(path);
            using var loaded = VariationalAutoencoder.Load(path, "cpu");
            Assert.Equal((Activation.Tanh, (double?)0.3), (loaded.Options.Activation, loaded.Options.InitStd));
            Assert.Equal(vae.Reconstruct(x), loaded.Reconstruct(x));

            using var ae = new Autoencoder(new AutoencoderOptions
            { InputSize = 12, LatentSize = 2, HiddenSizes = [8], Activation = Activation.Tanh, InitStd = 0.2, Device = "cpu" });
            Assert.IsType<TorchSharp.Modules.Tanh>(ae.CoreModel.Networks.Encoder.children().ElementAt(1));
            var aePath = Path.Combine(dir.FullName, "ae.model");
            ae.Save(aePath);
            using var aeLoaded = Autoencoder.Load(aePath, "cpu");
            Assert.Equal((Activation.Tanh, (double?)0.2), (aeLoaded.Options.Activation, aeLoaded.Options.InitStd));
            Assert.Equal(ae.Reconstruct(x), aeLoaded.Reconstruct(x));

            using var plain = new Autoencoder(new AutoencoderOptions { InputSize = 12, LatentSize = 2, Device = "cpu" });
            var plainPath = Path.Combine(dir.FullName, "plain.model");
            plain.Save(plainPath);
            using var plainLoaded = Autoencoder.Load(plainPath, "cpu");
            Assert.Equal((Activation.ReLU, (double?)null), (plainLoaded.Options.Activation, plainLoaded.Options.InitStd));
        }
        finally { dir.Delete(true); }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    [InlineData(double.NaN)]
    public void A_bad_InitStd_is_an_ArgumentException(double std)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => new VariationalAutoencoder(new VaeOptions { InputSize = 4, LatentSize = 2, InitStd = std, Device = "cpu" }));
        Assert.Contains("InitStd", e.Message);
        Assert.ThrowsAny<ArgumentException>(() => new Autoencoder(new AutoencoderOptions { InputSize = 4, LatentSize = 2, InitStd = std, Device = "cpu" }));
    }

    [Fact]
    public void The_vae_reconstruction_error_is_the_mean_squared_error_of_Reconstruct()
    {
        var x = TestData.Uniform(5, 300, 10);
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 10, LatentSize = 3, HiddenSizes = [12], Device = "cpu" });
        vae.Fit(x, new TrainingOptions { Epochs = 2, BatchSize = 50 });
        var r = vae.Reconstruct(x);
        double sum = 0;
        for (int i = 0; i < 300; i++)
            for (int j = 0; j < 10; j++)
                sum += (r[i, j] - (double)x[i, j]) * (r[i, j] - (double)x[i, j]);
        Assert.Equal(sum / 3000, vae.ReconstructionError(x), 1e-6);
    }

    [Fact]
    public void The_nonlinear_autoencoder_refuses_data_outside_its_sigmoid_range_and_the_linear_one_takes_it()
    {
        var x = TestData.Uniform(6, 50, 8);
        x[7, 3] = 1.5f;
        using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 8, LatentSize = 2, HiddenSizes = [4], Device = "cpu" });
        var before = ae.Reconstruct(TestData.Uniform(1, 5, 8));
        var e = Assert.Throws<ArgumentException>(() => ae.Fit(x, new TrainingOptions { Epochs = 1 }));
        Assert.Contains("row 7", e.Message);
        Assert.Contains("Linear = true", e.Message);
        Assert.Equal(before, ae.Reconstruct(TestData.Uniform(1, 5, 8)));   // nothing trained
        Assert.Throws<ArgumentException>(() => ae.ReconstructionError(x));

        using var linear = new Autoencoder(new AutoencoderOptions { InputSize = 8, LatentSize = 2, Linear = true, Device = "cpu" });
        Assert.Single(linear.Fit(x, new TrainingOptions { Epochs = 1 }));
    }

    [Fact]
    public void The_importance_weighted_objective_trains_survives_Save_and_Load_and_refuses_a_Beta()
    {
        var dir = Directory.CreateTempSubdirectory("research-iwae-");
        try
        {
            var x = TestData.Uniform(9, 120, 10, binary: true);
            var options = new VaeOptions { InputSize = 10, LatentSize = 2, HiddenSizes = [8], Objective = Objective.ImportanceWeighted, Samples = 5, Device = "cpu" };
            using var vae = new VariationalAutoencoder(options);
            var history = vae.Fit(x, new TrainingOptions { Epochs = 2, BatchSize = 20, Validation = x });
            // ValidationLoss is the negative IWAE bound (K = Samples, the model's seed).
            Assert.Equal(-vae.LogLikelihood(x, importanceSamples: 5, seed: options.Seed), history[^1].ValidationLoss!.Value, 5);
            var path = Path.Combine(dir.FullName, "iwae.vae");
            vae.Save(path);
            using var loaded = VariationalAutoencoder.Load(path, "cpu");
            Assert.Equal(Objective.ImportanceWeighted, loaded.Options.Objective);
            var e = Assert.ThrowsAny<ArgumentException>(() => new VariationalAutoencoder(options with { Beta = 2.0 }));
            Assert.Contains("Beta must be 1", e.Message);
        }
        finally { dir.Delete(true); }
    }
}
