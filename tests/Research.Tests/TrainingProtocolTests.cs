namespace Research.Tests;

/// <summary>Binarised data (fixed and dynamic) and early stopping, through the facade.</summary>
public sealed class TrainingProtocolTests
{
    [Fact]
    public void Binarize_draws_each_pixel_with_its_value_as_probability_fixed_by_the_seed()
    {
        var x = new float[400, 50];
        for (int i = 0; i < 400; i++) for (int j = 0; j < 50; j++) x[i, j] = j / 49f;
        var a = Mnist.Binarize(x, seed: 3);
        Assert.Equal(a, Mnist.Binarize(x, seed: 3));
        Assert.NotEqual(a, Mnist.Binarize(x, seed: 4));
        Assert.All(a.Cast<float>(), v => Assert.True(v is 0f or 1f));
        for (int j = 0; j < 50; j += 7)
        {
            double ones = Enumerable.Range(0, 400).Sum(i => a[i, j]) / 400.0, p = j / 49.0;
            Assert.InRange(ones, p - 4 * Math.Sqrt(p * (1 - p) / 400) - 1e-9, p + 4 * Math.Sqrt(p * (1 - p) / 400) + 1e-9);
        }
        x[5, 7] = 1.2f;
        var e = Assert.ThrowsAny<ArgumentException>(() => Mnist.Binarize(x, 1));
        Assert.Contains("row 5", e.Message);
    }

    [Fact]
    public void Dynamic_binarization_reruns_bit_identically_differs_from_grey_level_training_and_refuses_data_outside_0_1()
    {
        var x = TestData.Uniform(2, 200, 10);   // grey levels in [0, 1]
        var training = new TrainingOptions { Epochs = 2, BatchSize = 40, DynamicBinarization = true, Seed = 5 };
        double[] Run(TrainingOptions t)
        {
            using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 10, LatentSize = 2, HiddenSizes = [8], Device = "cpu" });
            return vae.Fit(x, t).Select(r => r.TrainLoss).ToArray();
        }
        var first = Run(training);
        Assert.Equal(first, Run(training));
        Assert.NotEqual(first, Run(training with { DynamicBinarization = false }));

        var bad = TestData.Copy(x);
        bad[3, 4] = -0.5f;
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 10, LatentSize = 2, Likelihood = Likelihood.Gaussian, Device = "cpu" });
        var before = vae.Sample(2, seed: 1);
        var e = Assert.ThrowsAny<ArgumentException>(() => vae.Fit(bad, training));
        Assert.Contains("DynamicBinarization", e.Message);
        Assert.Equal(before, vae.Sample(2, seed: 1));
    }

    [Fact]
    public void Early_stopping_stops_after_the_patience_and_ends_with_the_best_epochs_weights()
    {
        var x = TestData.Uniform(3, 60, 10, binary: true);
        var validation = TestData.Uniform(4, 60, 10, binary: true);   // unrelated rows: the model overfits x quickly
        var options = new VaeOptions { InputSize = 10, LatentSize = 4, HiddenSizes = [64], Device = "cpu" };
        using var vae = new VariationalAutoencoder(options);
        var history = vae.Fit(x, new TrainingOptions { Epochs = 300, BatchSize = 10, LearningRate = 1e-2, Validation = validation, EarlyStoppingPatience = 3 });
        int best = history.BestEpoch!.Value;
        Assert.True(history.Count < 300, "stopped early");
        Assert.Equal(best + 3, history.Count);                       // exactly the patience after the best
        double lowest = history.Min(r => r.ValidationLoss!.Value);
        Assert.Equal(lowest, history[best - 1].ValidationLoss!.Value);
        Assert.All(history.Skip(best), r => Assert.True(r.ValidationLoss >= lowest));
        // The model holds the best epoch's weights: its validation loss is the best epoch's, recomputed.
        Assert.Equal(lowest, -vae.Elbo(validation, samples: 1, seed: options.Seed), 5);

        var e = Assert.ThrowsAny<ArgumentException>(() => vae.Fit(x, new TrainingOptions { EarlyStoppingPatience = 2 }));
        Assert.Contains("needs Validation", e.Message);
        Assert.ThrowsAny<ArgumentException>(() => vae.Fit(x, new TrainingOptions { EarlyStoppingPatience = 0, Validation = validation }));
        Assert.Null(vae.Fit(x, new TrainingOptions { Epochs = 1 }).BestEpoch);
    }
}
