namespace Research.Tests;

/// <summary>Convolutional encoders and decoders (<see cref="VaeOptions.Convolutional"/>): the layers the options
/// describe, shapes that do not fit refused before any work, seeded initialisation, and training on real MNIST.</summary>
public sealed class ConvolutionalTests
{
    private static readonly ImageShape Mnist28 = new(1, 28, 28);

    private static long[][] Shapes(TorchSharp.torch.nn.Module m) => m.parameters().Select(p => p.shape).ToArray();

    /// <summary>The first <paramref name="n"/> MNIST test images, [n, 784] in [0, 1].</summary>
    private static float[,] MnistImages(int n)
    {
        var (images, _) = Mnist.Load(TestData.MnistFolder, MnistSplit.Test);
        var x = new float[n, 784];
        for (int i = 0; i < n; i++) for (int j = 0; j < 784; j++) x[i, j] = images[i, j];
        return x;
    }

    [Fact]
    public void The_mnist_vae_of_the_options_has_the_layers_they_describe()
    {
        var options = new VaeOptions { InputSize = 784, LatentSize = 20, HiddenSizes = [32, 64], Convolutional = Mnist28, Device = "cpu" };
        using var vae = new VariationalAutoencoder(options);
        var net = vae.CoreModel.Networks;
        // Conv(1→32) to 14×14, Conv(32→64) to 7×7, Linear(3136 → 2·20).
        Assert.Equal(new long[][] { [32, 1, 4, 4], [32], [64, 32, 4, 4], [64], [40, 3136], [40] }, Shapes(net.Encoder));
        // Linear(20 → 3136), ConvTranspose(64→32) to 14×14, ConvTranspose(32→1) to 28×28.
        Assert.Equal(new long[][] { [3136, 20], [3136], [64, 32, 4, 4], [32], [32, 1, 4, 4], [1] }, Shapes(net.Decoder));
        Assert.Equal((3, 784), (vae.Decode(new float[3, 20]).GetLength(0), vae.Decode(new float[3, 20]).GetLength(1)));

        using var gaussian = new VariationalAutoencoder(options with { Likelihood = Likelihood.Gaussian });
        Assert.Equal([32, 2, 4, 4], Shapes(gaussian.CoreModel.Networks.Decoder)[^2]);   // means and log-variances: 2C channels
        using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 784, LatentSize = 8, HiddenSizes = [16], Convolutional = Mnist28, Device = "cpu" });
        Assert.Equal([8, 3136], Shapes(ae.CoreModel.Networks.Encoder)[^2]);
    }

    [Fact]
    public void Shapes_that_do_not_fit_are_ArgumentExceptions_naming_the_problem()
    {
        ArgumentException Refused(VaeOptions o) => Assert.ThrowsAny<ArgumentException>(() => new VariationalAutoencoder(o with { Device = "cpu" }));
        var o = new VaeOptions { InputSize = 784, LatentSize = 4, HiddenSizes = [8, 8, 8], Convolutional = Mnist28 };
        Assert.Contains("divisible by 8", Refused(o).Message);
        Assert.Contains("InputSize is 784", Refused(o with { HiddenSizes = [8], Convolutional = new ImageShape(3, 28, 28) }).Message);
        Assert.Contains("at least one convolution", Refused(o with { HiddenSizes = [] }).Message);
        Assert.ThrowsAny<ArgumentException>(() => new Autoencoder(new AutoencoderOptions
        { InputSize = 784, LatentSize = 4, HiddenSizes = [8], Convolutional = Mnist28, Linear = true, Device = "cpu" }));
    }

    [Fact]
    public void The_same_seed_gives_the_same_weights_and_another_seed_others()
    {
        VariationalAutoencoder Make(int seed) => new(new VaeOptions
        { InputSize = 784, LatentSize = 4, HiddenSizes = [4, 8], Convolutional = Mnist28, Seed = seed, Device = "cpu" });
        using var a = Make(1);
        using var b = Make(1);
        using var c = Make(2);
        var z = new float[2, 4];
        z[0, 0] = 1f; z[1, 3] = -1f;
        Assert.Equal(a.Decode(z), b.Decode(z));
        Assert.NotEqual(a.Decode(z), c.Decode(z));
    }

    [Fact]
    public void A_convolutional_vae_and_autoencoder_train_on_mnist_and_round_trip_through_Save_and_Load()
    {
        var dir = Directory.CreateTempSubdirectory("research-conv-");
        try
        {
            var x = MnistImages(600);
            using var vae = new VariationalAutoencoder(new VaeOptions
            { InputSize = 784, LatentSize = 8, HiddenSizes = [8, 16], Convolutional = Mnist28, Device = "cpu" });
            var history = vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 50, LearningRate = 3e-3 });
            Assert.True(history[^1].TrainLoss < history[0].TrainLoss - 20, $"−ELBO fell: {history[0].TrainLoss:F1} → {history[^1].TrainLoss:F1}");
            var path = Path.Combine(dir.FullName, "conv.vae");
            vae.Save(path);
            using var loaded = VariationalAutoencoder.Load(path, "cpu");
            Assert.Equal(Mnist28, loaded.Options.Convolutional);
            Assert.Equal(vae.Reconstruct(x), loaded.Reconstruct(x));

            using var ae = new Autoencoder(new AutoencoderOptions
            { InputSize = 784, LatentSize = 8, HiddenSizes = [8, 16], Convolutional = Mnist28, Device = "cpu" });
            double before = ae.ReconstructionError(x);
            ae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 50, LearningRate = 3e-3 });
            Assert.True(ae.ReconstructionError(x) < 0.8 * before, $"MSE fell: {before:F4} → {ae.ReconstructionError(x):F4}");
            var aePath = Path.Combine(dir.FullName, "conv.ae");
            ae.Save(aePath);
            using var aeLoaded = Autoencoder.Load(aePath, "cpu");
            Assert.Equal(ae.Reconstruct(x), aeLoaded.Reconstruct(x));
        }
        finally { dir.Delete(true); }
    }
}
