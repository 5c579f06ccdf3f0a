using System.Reflection;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using TorchSharp;
using Core = Research.Core;

namespace Research.Tests;

/// <summary>Reliability of the public API: the exact state after a divergence or a failing callback, edge
/// inputs, use after Dispose of every method, no tensor left behind, and inference from several threads.</summary>
public sealed class ReliabilityTests
{
    private static VariationalAutoencoder Vae(int seed = 0, int input = 12, int latent = 2) =>
        new(new VaeOptions { InputSize = input, LatentSize = latent, HiddenSizes = [8], Seed = seed, Device = "cpu" });

    private static Autoencoder Ae(int seed = 0, int input = 12, int latent = 2) =>
        new(new AutoencoderOptions { InputSize = input, LatentSize = latent, HiddenSizes = [8], Seed = seed, Device = "cpu" });

    /// <summary>Everything the API shows of a VAE for fixed seeds, as the bytes of the results (bit-exact).</summary>
    private static string Observe(VariationalAutoencoder vae, float[,] x)
    {
        var bytes = new List<byte>();
        void Add(float[,] a) { foreach (var v in a) bytes.AddRange(BitConverter.GetBytes(v)); }
        Add(vae.Sample(8, seed: 5));
        var (mean, logVariance) = vae.Encode(x);
        Add(mean);
        Add(logVariance);
        Add(vae.Reconstruct(x));
        bytes.AddRange(BitConverter.GetBytes(vae.Elbo(x, samples: 2, seed: 7)));
        bytes.AddRange(BitConverter.GetBytes(vae.LogLikelihood(x, importanceSamples: 10, seed: 9)));
        return System.Convert.ToHexString(bytes.ToArray());
    }

    private static string Observe(Autoencoder ae, float[,] x)
    {
        var bytes = new List<byte>();
        foreach (var v in ae.Reconstruct(x)) bytes.AddRange(BitConverter.GetBytes(v));
        foreach (var v in ae.Encode(x)) bytes.AddRange(BitConverter.GetBytes(v));
        bytes.AddRange(BitConverter.GetBytes(ae.ReconstructionError(x)));
        return System.Convert.ToHexString(bytes.ToArray());
    }

    /// <summary>Calls back on the training thread, at once (Progress&lt;T&gt; posts to the thread pool instead).</summary>
    private sealed class SynchronousProgress(Action<EpochReport> report) : IProgress<EpochReport>
    {
        public void Report(EpochReport value) => report(value);
    }

    [Fact]
    public void After_a_divergence_the_model_scores_and_samples_exactly_as_before_the_failed_step()
    {
        var x = TestData.Uniform(21, 64, 12, binary: true);
        using var vae = Vae(seed: 21);
        vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRate = 1e-2 });
        // Full batches: one step per epoch, so states[k] is what the model showed after k steps of this Fit.
        var states = new List<string> { Observe(vae, x) };
        var ex = Assert.Throws<Core.Training.DivergedException>(() => vae.Fit(x, new TrainingOptions
        {
            Epochs = 20, BatchSize = 64, LearningRate = 1e6, Progress = new SynchronousProgress(_ => states.Add(Observe(vae, x))),
        }));
        Assert.Contains($"epoch {ex.epoch}, batch {ex.batch}", ex.Message);
        Assert.Equal(1, ex.batch);
        Assert.True(ex.epoch >= 2);
        // The loss of epoch e was the first that was not finite: the model is as it was after e − 2 steps.
        Assert.Equal(states[ex.epoch - 2], Observe(vae, x));
        Assert.True(double.IsFinite(vae.Elbo(x)));
        Assert.All(vae.Fit(x, new TrainingOptions { Epochs = 2 }), r => Assert.True(double.IsFinite(r.TrainLoss)));
    }

    [Fact]
    public void An_exception_from_Progress_propagates_and_leaves_the_model_as_after_that_epoch()
    {
        var x = TestData.Uniform(23, 200, 12, binary: true);
        var options = new TrainingOptions { Epochs = 5, BatchSize = 32, Seed = 4 };
        using var vae = Vae(seed: 23);
        var boom = new ApplicationException("the callback failed");
        string? atThrow = null;
        var ex = Assert.Throws<ApplicationException>(() => vae.Fit(x, options with
        {
            Progress = new SynchronousProgress(r =>
            {
                if (r.Epoch != 2) return;
                atThrow = Observe(vae, x);
                throw boom;
            }),
        }));
        Assert.Same(boom, ex);
        Assert.Equal(atThrow, Observe(vae, x));
        using var reference = Vae(seed: 23);
        reference.Fit(x, options with { Epochs = 2 });
        Assert.Equal(Observe(reference, x), Observe(vae, x));
        // The one-Fit-at-a-time guard was released: Fit runs again, in step with the reference.
        Assert.Equal(reference.Fit(x, options).Select(r => r.TrainLoss), vae.Fit(x, options).Select(r => r.TrainLoss));
        Assert.Equal(Observe(reference, x), Observe(vae, x));

        using var ae = Ae(seed: 3);
        Assert.Throws<OperationCanceledException>(() => ae.Fit(x, new TrainingOptions
        {
            Validation = TestData.Uniform(24, 10, 12), Progress = new SynchronousProgress(_ => throw new OperationCanceledException()),
        }));
        Assert.Single(ae.Fit(x, new TrainingOptions { Epochs = 1 }));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(128)]
    public void A_single_example_trains_and_scores(int batchSize)
    {
        var x = TestData.Uniform(26, 1, 12, binary: true);
        using var vae = Vae(seed: 26);
        var history = vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = batchSize, Validation = x });
        Assert.Equal([1L, 2L, 3L], history.Select(r => r.ExamplesSeen));
        Assert.All(history, r => Assert.True(double.IsFinite(r.TrainLoss) && double.IsFinite(r.ValidationLoss!.Value)));
        Assert.True(double.IsFinite(vae.Elbo(x)) && double.IsFinite(vae.LogLikelihood(x, importanceSamples: 20)));
        Assert.Equal(2, vae.Encode(x).Mean.GetLength(1));
        Assert.Equal(12, vae.Reconstruct(x).GetLength(1));
        using var ae = Ae(seed: 26);
        ae.Fit(x, new TrainingOptions { Epochs = 2, BatchSize = batchSize });
        Assert.True(double.IsFinite(ae.ReconstructionError(x)));
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(1f)]
    public void Constant_images_train_a_Bernoulli_VAE_with_finite_scores(float value)
    {
        var x = new float[64, 12];
        for (int i = 0; i < 64; i++) for (int j = 0; j < 12; j++) x[i, j] = value;
        using var vae = Vae(seed: 27);
        var history = vae.Fit(x, new TrainingOptions { Epochs = 20, BatchSize = 16, LearningRate = 1e-2 });
        Assert.All(history, r => Assert.True(double.IsFinite(r.TrainLoss)));
        Assert.True(history[^1].TrainLoss < history[0].TrainLoss / 2, "the loss falls towards 0");
        double elbo = vae.Elbo(x, samples: 4), logLikelihood = vae.LogLikelihood(x, importanceSamples: 50);
        Assert.True(double.IsFinite(elbo) && elbo <= 0, $"ELBO {elbo}");
        Assert.True(double.IsFinite(logLikelihood) && logLikelihood <= 0, $"log p(x) {logLikelihood}");
        Assert.All(vae.Reconstruct(x).Cast<float>(), p => Assert.True(p >= 0 && p <= 1));
    }

    [Fact]
    public void Log_variances_of_plus_or_minus_50_give_a_finite_closed_form_KL()
    {
        foreach (float logVariance in new[] { -50f, 50f })
            foreach (float mean in new[] { -1000f, 0f, 1000f })
                foreach (int d in new[] { 1, 1000 })
                {
                    var m = Enumerable.Repeat(mean, d).ToArray();
                    var v = Enumerable.Repeat(logVariance, d).ToArray();
                    double kl = GaussianKl.ToStandardNormal(m, v);
                    double expected = 0.5 * d * (Math.Exp(logVariance) + (double)mean * mean - logVariance - 1);
                    Assert.True(double.IsFinite(kl), $"KL(μ = {mean}, log σ² = {logVariance}, d = {d}) = {kl}");
                    Assert.Equal(expected, kl, expected * 1e-12);
                }
    }

    [Fact]
    public void A_latent_size_larger_than_the_input_is_refused()
    {
        var vae = Assert.Throws<ArgumentOutOfRangeException>(() => Vae(input: 4, latent: 5));
        Assert.Contains("LatentSize (5)", vae.Message);
        Assert.Contains("InputSize (4)", vae.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Ae(input: 4, latent: 5));
        using var equal = new VariationalAutoencoder(new VaeOptions { InputSize = 4, LatentSize = 4, HiddenSizes = [], Device = "cpu" });
        equal.Fit(TestData.Uniform(28, 10, 4, binary: true), new TrainingOptions { Epochs = 1 });
    }

    /// <summary>Any row count with any batch size, a multiple of it or not, smaller or larger: every epoch
    /// sees every row once, and the losses are finite.</summary>
    [Property(MaxTest = 25)]
    public bool Any_row_count_trains_with_any_batch_size(PositiveInt rows, PositiveInt batch, PositiveInt epochs)
    {
        int n = 1 + rows.Get % 40, b = 1 + batch.Get % 60, e = 1 + epochs.Get % 3;
        var x = TestData.Uniform(n * 100 + b, n, 6, binary: true);
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [4], Device = "cpu" });
        using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 6, LatentSize = 2, Device = "cpu" });
        var options = new TrainingOptions { Epochs = e, BatchSize = b };
        var expected = Enumerable.Range(1, e).Select(k => (long)k * n);
        return new[] { vae.Fit(x, options), ae.Fit(x, options) }.All(h =>
            h.Count == e && h.Select(r => r.ExamplesSeen).SequenceEqual(expected) && h.All(r => double.IsFinite(r.TrainLoss)));
    }

    /// <summary>The public instance methods of a model type, bar Dispose: the list the test below must cover.</summary>
    private static string[] PublicMethods(Type type) =>
        type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            .Where(m => !m.IsSpecialName && m.Name != nameof(IDisposable.Dispose))
            .Select(m => m.Name).Distinct().Order().ToArray();

    [Fact]
    public void Every_public_method_throws_ObjectDisposedException_after_Dispose()
    {
        var x = TestData.Uniform(30, 4, 12, binary: true);
        var z = new float[3, 2];
        var dir = Directory.CreateTempSubdirectory("research-disposed-");
        try
        {
            var path = Path.Combine(dir.FullName, "model");
            var vae = Vae();
            vae.Fit(x, new TrainingOptions { Epochs = 1 });
            vae.Dispose();
            vae.Dispose(); // a second Dispose is harmless
            var vaeCalls = new Dictionary<string, Action>
            {
                ["Fit"] = () => vae.Fit(x), ["Encode"] = () => vae.Encode(x), ["Decode"] = () => vae.Decode(z),
                ["Reconstruct"] = () => vae.Reconstruct(x), ["ReconstructionError"] = () => vae.ReconstructionError(x),
                ["Sample"] = () => vae.Sample(2), ["Elbo"] = () => vae.Elbo(x),
                ["LogLikelihood"] = () => vae.LogLikelihood(x, 5), ["Save"] = () => vae.Save(path),
                ["ActiveUnits"] = () => vae.ActiveUnits(x), ["KlPerDimension"] = () => vae.KlPerDimension(x),
                ["ExportPyTorch"] = () => vae.ExportPyTorch(path), ["EstimateLogLikelihood"] = () => vae.EstimateLogLikelihood(x, samples: 5),
            };
            var ae = Ae();
            ae.Dispose();
            ae.Dispose();
            var aeCalls = new Dictionary<string, Action>
            {
                ["Fit"] = () => ae.Fit(x), ["Encode"] = () => ae.Encode(x), ["Decode"] = () => ae.Decode(z),
                ["Reconstruct"] = () => ae.Reconstruct(x), ["ReconstructionError"] = () => ae.ReconstructionError(x),
                ["Save"] = () => ae.Save(path), ["ExportPyTorch"] = () => ae.ExportPyTorch(path),
            };
            foreach (var (type, calls) in new[] { (typeof(VariationalAutoencoder), vaeCalls), (typeof(Autoencoder), aeCalls) })
            {
                Assert.Equal(PublicMethods(type), calls.Keys.Order().ToArray());
                foreach (var (name, call) in calls)
                {
                    var ex = Assert.Throws<ObjectDisposedException>(call);
                    Assert.True(ex.ObjectName == type.Name, $"{type.Name}.{name} names the disposed object: {ex.ObjectName}");
                }
            }
            Assert.False(File.Exists(path), "Save after Dispose writes nothing");
            Assert.Equal(12, vae.Options.InputSize); // the options stay readable
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void No_public_method_leaves_a_tensor_behind()
    {
        // TorchSharp counts the tensors created and disposed on each thread; one left to the finalizer stays counted.
        static long Live() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var x = TestData.Uniform(31, 50, 12, binary: true);
        var z = TestData.Uniform(32, 5, 2);
        var dir = Directory.CreateTempSubdirectory("research-leaks-");
        try
        {
            string vaePath = Path.Combine(dir.FullName, "vae"), aePath = Path.Combine(dir.FullName, "ae");
            using var vae = Vae();
            using var ae = Ae();
            var pca = Pca.Fit(x, 3);
            var training = new TrainingOptions { Epochs = 2, BatchSize = 16, Validation = x };
            var calls = new Dictionary<string, Action>
            {
                ["VAE constructor + Dispose"] = () => Vae().Dispose(),
                ["VAE Fit"] = () => vae.Fit(x, training), ["VAE Encode"] = () => vae.Encode(x), ["VAE Decode"] = () => vae.Decode(z),
                ["VAE Reconstruct"] = () => vae.Reconstruct(x), ["VAE Sample"] = () => vae.Sample(3), ["VAE Elbo"] = () => vae.Elbo(x),
                ["VAE LogLikelihood"] = () => vae.LogLikelihood(x, 7), ["VAE Save"] = () => vae.Save(vaePath),
                ["VAE Load + Dispose"] = () => VariationalAutoencoder.Load(vaePath, "cpu").Dispose(),
                ["AE constructor + Dispose"] = () => Ae().Dispose(),
                ["AE Fit"] = () => ae.Fit(x, training), ["AE Encode"] = () => ae.Encode(x), ["AE Decode"] = () => ae.Decode(z),
                ["AE Reconstruct"] = () => ae.Reconstruct(x), ["AE ReconstructionError"] = () => ae.ReconstructionError(x),
                ["AE Save"] = () => ae.Save(aePath), ["AE Load + Dispose"] = () => Autoencoder.Load(aePath, "cpu").Dispose(),
                ["GaussianKl"] = () => GaussianKl.ToStandardNormal([1f, 2f], [0.5f, -0.5f]),
                ["Pca.Fit"] = () => Pca.Fit(x, 3), ["Pca Transform"] = () => pca.Transform(x),
                ["Pca InverseTransform"] = () => pca.InverseTransform(pca.Transform(x)), ["Pca ReconstructionError"] = () => pca.ReconstructionError(x),
                ["refused input"] = () => Assert.ThrowsAny<ArgumentException>(() => vae.Fit(TestData.Uniform(33, 5, 12, binary: false).Also(a => a[2, 3] = 2f))),
            };
            // A PcaModel holds its mean and components (it has no Dispose; the GC frees them with it).
            var kept = new Dictionary<string, long> { ["Pca.Fit"] = 2 };
            var leaked = new List<string>();
            foreach (var (name, call) in calls)
            {
                call(); // a first call may set up lasting state (none is expected)
                long before = Live();
                call();
                long after = Live();
                if (after - before != kept.GetValueOrDefault(name)) leaked.Add($"{name}: {after - before}");
            }
            Assert.Empty(leaked);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Inference_on_one_model_from_several_threads_gives_the_single_threaded_results()
    {
        var x = TestData.Uniform(34, 200, 12, binary: true);
        using var vae = Vae(seed: 34);
        vae.Fit(x, new TrainingOptions { Epochs = 2, BatchSize = 32 });
        using var ae = Ae(seed: 34);
        ae.Fit(x, new TrainingOptions { Epochs = 2, BatchSize = 32 });
        string Run() => Observe(vae, x) + Observe(ae, x);
        var reference = Run();
        var results = new string[8];
        using var start = new Barrier(4);
        var threads = Enumerable.Range(0, 4).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            results[2 * i] = Run();
            results[2 * i + 1] = Run();
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.All(results, r => Assert.Equal(reference, r));
    }
}

internal static class ArrayExtensions
{
    /// <summary>Applies <paramref name="change"/> to <paramref name="value"/> and returns it.</summary>
    public static T Also<T>(this T value, Action<T> change)
    {
        change(value);
        return value;
    }
}
