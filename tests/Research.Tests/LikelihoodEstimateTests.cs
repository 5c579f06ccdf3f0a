namespace Research.Tests;

/// <summary>Likelihood estimates with error bars, and the two estimators against each other on an MNIST VAE.</summary>
public sealed class LikelihoodEstimateTests
{
    [Fact]
    public void On_an_mnist_vae_ais_with_16_chains_is_above_the_elbo_and_at_most_1_5_nats_below_is_with_2000_samples()
    {
        var (train, _) = Mnist.Load(TestData.MnistFolder, MnistSplit.Train);
        var (test, _) = Mnist.Load(TestData.MnistFolder, MnistSplit.Test);
        var x = new float[5000, 784];
        for (int i = 0; i < 5000; i++) for (int j = 0; j < 784; j++) x[i, j] = train[i, j];
        var rows = new float[12, 784];
        for (int i = 0; i < 12; i++) for (int j = 0; j < 784; j++) rows[i, j] = test[i, j];
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 784, LatentSize = 10, HiddenSizes = [200], Device = "cpu" });
        vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 100 });

        var importance = vae.EstimateLogLikelihood(rows, LikelihoodEstimator.ImportanceSampling, samples: 2000, seed: 1);
        Assert.Equal(vae.LogLikelihood(rows, importanceSamples: 2000, seed: 1), importance.Mean, 3);   // the same estimator (sums in float32 there)
        Assert.InRange(importance.EffectiveSampleSize, 1.0, 2000.0);
        Assert.True(importance.StandardError > 0 && importance.Samples == 2000);
        var ais = vae.EstimateLogLikelihood(rows, LikelihoodEstimator.AnnealedImportanceSampling, samples: 16, seed: 1);
        Assert.InRange(ais.EffectiveSampleSize, 1.0, 16.0);
        double elbo = vae.Elbo(rows, samples: 100, seed: 1);
        Assert.True(ais.Mean > elbo, $"AIS {ais.Mean:F2} is above the ELBO {elbo:F2}");
        Assert.True(ais.Mean > importance.Mean - 1.5, $"AIS {ais.Mean:F2} ± {ais.StandardError:F2} vs IS {importance.Mean:F2} ± {importance.StandardError:F2}");
        Assert.ThrowsAny<ArgumentException>(() => vae.EstimateLogLikelihood(rows, samples: 0));
    }
}
