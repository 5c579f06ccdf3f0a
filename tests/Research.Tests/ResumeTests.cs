namespace Research.Tests;

/// <summary>Resumable training (<see cref="TrainingOptions.CheckpointPath"/>): a run stopped after any epoch and resumed
/// in a fresh model ends bit-identical to the uninterrupted run, and a checkpoint of another run is refused.</summary>
public sealed class ResumeTests
{
    private static readonly float[,] X = TestData.Uniform(21, 120, 10);
    private static readonly float[,] V = TestData.Uniform(22, 30, 10);

    private static readonly string[] RunNames = ["adam-B", "adagrad-decay", "estimator-A", "iwae", "binarized", "early-stopping", "autoencoder"];

    private static (VaeOptions?, AutoencoderOptions?, TrainingOptions) Setup(string run)
    {
        var vae = new VaeOptions { InputSize = 10, LatentSize = 2, HiddenSizes = [8], Seed = 3, Device = "cpu" };
        var training = new TrainingOptions { Epochs = 4, BatchSize = 25, Seed = 9, Validation = V };
        return run switch
        {
            "adam-B" => (vae, null, training),
            "adagrad-decay" => (vae, null, training with { Optimizer = Optimizer.Adagrad, LearningRate = 0.05, WeightDecay = 1e-3 }),
            "estimator-A" => (vae with { KlEstimator = KlEstimator.MonteCarlo, Samples = 2 }, null, training),
            "iwae" => (vae with { Objective = Objective.ImportanceWeighted, Samples = 3 }, null, training),
            "binarized" => (vae, null, training with { DynamicBinarization = true }),
            "early-stopping" => (vae, null, training with { Epochs = 12, LearningRate = 3e-2, EarlyStoppingPatience = 2 }),
            _ => (null, new AutoencoderOptions { InputSize = 10, LatentSize = 3, HiddenSizes = [6], Seed = 3, Device = "cpu" }, training),
        };
    }

    /// <summary>Trains a fresh model with <paramref name="training"/>; returns the history and what the weights compute.</summary>
    private static (EpochReport[] History, float[,] Output) Train(string run, TrainingOptions training)
    {
        var (vae, ae, _) = Setup(run);
        if (vae is not null)
        {
            using var m = new VariationalAutoencoder(vae);
            var h = m.Fit(X, training).ToArray();
            return (h, m.Reconstruct(X));
        }
        using var a = new Autoencoder(ae!);
        var history = a.Fit(X, training).ToArray();
        return (history, a.Reconstruct(X));
    }

    private static void SameRun((EpochReport[] History, float[,] Output) straight, (EpochReport[] History, float[,] Output) resumed)
    {
        Assert.Equal(straight.Output, resumed.Output);                    // bit-identical weights
        Assert.Equal(straight.History.Length, resumed.History.Length);
        foreach (var (s, r) in straight.History.Zip(resumed.History))
            Assert.Equal((s.Epoch, s.TrainLoss, s.ValidationLoss, s.ExamplesSeen), (r.Epoch, r.TrainLoss, r.ValidationLoss, r.ExamplesSeen));
    }

    /// <summary>Every run, with the checkpoint written after each epoch only, and also after every second minibatch
    /// (<see cref="TrainingOptions.CheckpointEveryBatches"/>, resumed with every third).</summary>
    public static TheoryData<string, bool> RunsAndCheckpointing()
    {
        var data = new TheoryData<string, bool>();
        foreach (var run in RunNames) { data.Add(run, false); data.Add(run, true); }
        return data;
    }

    [Theory]
    [MemberData(nameof(RunsAndCheckpointing))]
    public void A_run_cancelled_after_an_epoch_and_resumed_in_a_fresh_model_ends_bit_identical_to_the_straight_run(string run, bool withinEpochs)
    {
        var dir = Directory.CreateTempSubdirectory("research-resume-");
        try
        {
            var (_, _, training) = Setup(run);
            var straight = Train(run, training);
            var path = Path.Combine(dir.FullName, "run.checkpoint");
            // Cancel during epoch 3 (after epoch 2's checkpoint), then resume twice more: at epoch 3, then to the end.
            using var stop = new CancellationTokenSource();
            var first = Train(run, training with
            {
                CheckpointPath = path, CheckpointEveryBatches = withinEpochs ? 2 : null, Cancellation = stop.Token,
                Progress = new SyncProgress(r => { if (r.Epoch == 2) stop.Cancel(); }),
            });
            Assert.Equal(2, first.History.Length);
            var resumed = Train(run, training with { CheckpointPath = path, CheckpointEveryBatches = withinEpochs ? 3 : null });
            SameRun(straight, resumed);
            // The file stays: a later Fit at Epochs returns the finished run without training.
            SameRun(straight, Train(run, training with { CheckpointPath = path }));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void CheckpointEveryBatches_without_a_CheckpointPath_or_below_one_is_refused_before_any_work()
    {
        var (options, _, training) = Setup("adam-B");
        using var vae = new VariationalAutoencoder(options!);
        var before = vae.Reconstruct(X);
        Assert.Equal("CheckpointEveryBatches", Assert.Throws<ArgumentException>(() => vae.Fit(X, training with { CheckpointEveryBatches = 5 })).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => vae.Fit(X, training with { CheckpointPath = "unused.checkpoint", CheckpointEveryBatches = 0 }));
        Assert.Equal(before, vae.Reconstruct(X));
        Assert.False(File.Exists("unused.checkpoint"));
    }

    [Fact]
    public void A_larger_Epochs_extends_the_run_as_a_straight_run_of_that_length()
    {
        var dir = Directory.CreateTempSubdirectory("research-resume-");
        try
        {
            var (_, _, training) = Setup("adam-B");
            var path = Path.Combine(dir.FullName, "run.checkpoint");
            Train("adam-B", training with { CheckpointPath = path });
            SameRun(Train("adam-B", training with { Epochs = 6 }), Train("adam-B", training with { Epochs = 6, CheckpointPath = path }));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void A_checkpoint_of_another_run_or_a_damaged_one_is_refused_naming_what_differs_and_changes_nothing()
    {
        var dir = Directory.CreateTempSubdirectory("research-resume-");
        try
        {
            var (options, _, training) = Setup("adam-B");
            var path = Path.Combine(dir.FullName, "run.checkpoint");
            Train("adam-B", training with { Epochs = 2, CheckpointPath = path });
            using var vae = new VariationalAutoencoder(options!);
            var before = vae.Reconstruct(X);
            string Refused(VariationalAutoencoder m, float[,] data, TrainingOptions t) =>
                Assert.Throws<InvalidDataException>(() => m.Fit(data, t)).Message;
            Assert.Contains("Seed", Refused(vae, X, training with { Seed = 10, CheckpointPath = path }));
            Assert.Contains("LearningRate", Refused(vae, X, training with { LearningRate = 0.01, CheckpointPath = path }));
            Assert.Contains("data", Refused(vae, TestData.Uniform(23, 120, 10), training with { CheckpointPath = path }));
            Assert.Contains("validation", Refused(vae, X, training with { Validation = X, CheckpointPath = path }));
            using var other = new VariationalAutoencoder(options! with { HiddenSizes = [9] });
            Assert.Contains("HiddenSizes", Refused(other, X, training with { CheckpointPath = path }));
            Assert.Equal(before, vae.Reconstruct(X));

            var bytes = File.ReadAllBytes(path);
            bytes[bytes.Length / 2] ^= 0x40;
            File.WriteAllBytes(path, bytes);
            Assert.Throws<InvalidDataException>(() => vae.Fit(X, training with { CheckpointPath = path }));
            File.WriteAllBytes(path, bytes[..(bytes.Length / 3)]);
            Assert.Throws<InvalidDataException>(() => vae.Fit(X, training with { CheckpointPath = path }));
            Assert.Equal(before, vae.Reconstruct(X));
        }
        finally { dir.Delete(true); }
    }

    /// <summary>Progress that reports on the training thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<EpochReport> report) : IProgress<EpochReport>
    {
        public void Report(EpochReport value) => report(value);
    }
}
