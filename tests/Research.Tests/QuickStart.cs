namespace Research.Tests;

/// <summary>The README's C# quick start, compiled here; <see cref="ReadmeTests"/> checks that the README
/// shows exactly these lines and runs them.</summary>
internal static class QuickStart
{
    public static void Run(string mnist, int epochs)
    {
        // README:begin
        var (train, _) = Mnist.Load(mnist, MnistSplit.Train);
        var (test, _) = Mnist.Load(mnist, MnistSplit.Test);

        var pca = Pca.Fit(train, components: 20);
        Console.WriteLine($"PCA, 20 components: test MSE {pca.ReconstructionError(test):F4}");

        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 784, LatentSize = 20 });
        vae.Fit(train, new TrainingOptions { Epochs = epochs, Progress = new Progress<EpochReport>(Console.WriteLine) });
        Console.WriteLine($"VAE: test ELBO {vae.Elbo(test):F1} nats per image");
        vae.Save("vae.model");
        // README:end
    }
}
