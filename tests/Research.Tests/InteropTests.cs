using TorchSharp;

namespace Research.Tests;

/// <summary>The jagged (<c>float[][]</c>) and span-with-row-count overloads give exactly what the <c>float[,]</c> ones
/// give, refuse malformed input before any work, and the core objects behind the facade are shared, not copied.</summary>
public sealed class InteropTests
{
    private static float[][] Jagged(float[,] a) =>
        Enumerable.Range(0, a.GetLength(0)).Select(i => Enumerable.Range(0, a.GetLength(1)).Select(j => a[i, j]).ToArray()).ToArray();

    private static float[] Flat(float[,] a) => a.Cast<float>().ToArray();   // row-major, as C# lays out float[,]

    [Fact]
    public void Pca_gives_the_same_fit_and_outputs_for_every_input_form()
    {
        var x = TestData.Uniform(11, 40, 7);
        var byArray = Pca.Fit(x, 3);
        var byJagged = Pca.Fit(Jagged(x), 3);
        var bySpan = Pca.Fit(Flat(x), rows: 40, components: 3);
        Assert.Equal(byArray.Components, byJagged.Components);
        Assert.Equal(byArray.Components, bySpan.Components);
        Assert.Equal(byArray.Mean, bySpan.Mean);

        var codes = byArray.Transform(x);
        Assert.Equal(codes, byArray.Transform(Jagged(x)));
        Assert.Equal(codes, byArray.Transform(Flat(x), 40));
        Assert.Equal(byArray.InverseTransform(codes), byArray.InverseTransform(Jagged(codes)));
        Assert.Equal(byArray.InverseTransform(codes), byArray.InverseTransform(Flat(codes), 40));
        Assert.Equal(byArray.ReconstructionError(x), byArray.ReconstructionError(Jagged(x)));
        Assert.Equal(byArray.ReconstructionError(x), byArray.ReconstructionError(Flat(x), 40));
    }

    [Fact]
    public void Autoencoder_gives_the_same_training_and_outputs_for_every_input_form()
    {
        var x = TestData.Uniform(12, 50, 6);
        var options = new AutoencoderOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5], Seed = 4, Device = "cpu" };
        var training = new TrainingOptions { Epochs = 2, BatchSize = 16, Seed = 1 };
        using var a = new Autoencoder(options);
        using var b = new Autoencoder(options);
        using var c = new Autoencoder(options);
        var h = a.Fit(x, training).Select(r => r.TrainLoss);
        Assert.Equal(h, b.Fit(Jagged(x), training).Select(r => r.TrainLoss));
        Assert.Equal(h, c.Fit(Flat(x), 50, training).Select(r => r.TrainLoss));

        var codes = a.Encode(x);
        Assert.Equal(codes, a.Encode(Jagged(x)));
        Assert.Equal(codes, a.Encode(Flat(x), 50));
        Assert.Equal(a.Decode(codes), a.Decode(Jagged(codes)));
        Assert.Equal(a.Decode(codes), a.Decode(Flat(codes), 50));
        Assert.Equal(a.Reconstruct(x), a.Reconstruct(Jagged(x)));
        Assert.Equal(a.Reconstruct(x), a.Reconstruct(Flat(x), 50));
        Assert.Equal(a.ReconstructionError(x), a.ReconstructionError(Jagged(x)));
        Assert.Equal(a.ReconstructionError(x), a.ReconstructionError(Flat(x), 50));
    }

    [Fact]
    public void Vae_gives_the_same_training_and_outputs_for_every_input_form()
    {
        var x = TestData.Uniform(13, 48, 6, binary: true);
        var options = new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5], Seed = 2, Device = "cpu" };
        var training = new TrainingOptions { Epochs = 2, BatchSize = 16, Seed = 3 };
        using var a = new VariationalAutoencoder(options);
        using var b = new VariationalAutoencoder(options);
        using var c = new VariationalAutoencoder(options);
        var h = a.Fit(x, training).Select(r => r.TrainLoss);
        Assert.Equal(h, b.Fit(Jagged(x), training).Select(r => r.TrainLoss));
        Assert.Equal(h, c.Fit(Flat(x), 48, training).Select(r => r.TrainLoss));

        var (mean, logVariance) = a.Encode(x);
        Assert.Equal(mean, a.Encode(Jagged(x)).Mean);
        Assert.Equal(logVariance, a.Encode(Flat(x), 48).LogVariance);
        Assert.Equal(a.Decode(mean), a.Decode(Jagged(mean)));
        Assert.Equal(a.Decode(mean), a.Decode(Flat(mean), 48));
        Assert.Equal(a.Reconstruct(x), a.Reconstruct(Jagged(x)));
        Assert.Equal(a.Reconstruct(x), a.Reconstruct(Flat(x), 48));
        Assert.Equal(a.Elbo(x, 2, 7), a.Elbo(Jagged(x), 2, 7));
        Assert.Equal(a.Elbo(x, 2, 7), a.Elbo(Flat(x), 48, 2, 7));
        Assert.Equal(a.LogLikelihood(x, 20, 1), a.LogLikelihood(Jagged(x), 20, 1));
        Assert.Equal(a.LogLikelihood(x, 20, 1), a.LogLikelihood(Flat(x), 48, 20, 1));
    }

    [Fact]
    public void Malformed_jagged_and_span_input_is_refused_before_any_work()
    {
        using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 6, LatentSize = 2, Device = "cpu" });
        var probe = TestData.Uniform(14, 3, 6);
        var before = ae.Reconstruct(probe);

        var ragged = Jagged(TestData.Uniform(15, 5, 6));
        ragged[3] = new float[5];
        var ex = Assert.ThrowsAny<ArgumentException>(() => ae.Fit(ragged));
        Assert.Contains("Row 3", ex.Message);
        ragged[3] = null!;
        Assert.Throws<ArgumentNullException>(() => ae.Fit(ragged));
        Assert.Throws<ArgumentNullException>(() => ae.Fit((float[][])null!));
        Assert.ThrowsAny<ArgumentException>(() => ae.Fit(Array.Empty<float[]>()));

        Assert.ThrowsAny<ArgumentException>(() => ae.Fit(new float[31], 5));           // 31 values are not 5 equal rows
        Assert.Throws<ArgumentOutOfRangeException>(() => ae.Fit(new float[30], 0));
        var wrongWidth = Assert.ThrowsAny<ArgumentException>(() => ae.Fit(new float[35], 5));   // 5 rows of 7, model takes 6
        Assert.Contains("7", wrongWidth.Message);
        Assert.ThrowsAny<ArgumentException>(() => Pca.Fit([1f, float.NaN, 2f, 3f], rows: 2, components: 1));

        Assert.Equal(before, ae.Reconstruct(probe));
    }

    [Fact]
    public void The_core_objects_behind_the_facade_are_shared_not_copied()
    {
        using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [4], Device = "cpu" });
        Assert.Same(vae.CoreModel, vae.CoreModel);
        // Zero the decoder through the core's TorchSharp module: the facade sees it at once (sigmoid(0) = 0.5).
        using (torch.no_grad())
            foreach (var p in vae.CoreModel.Networks.Decoder.parameters()) p.zero_();
        var decoded = vae.Decode(new float[3, 2]);
        Assert.All(decoded.Cast<float>(), v => Assert.Equal(0.5f, v));

        using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 6, LatentSize = 2, Linear = true, Device = "cpu" });
        using (torch.no_grad())
            foreach (var p in ae.CoreModel.Networks.Encoder.parameters()) p.zero_();
        Assert.All(ae.Encode(TestData.Uniform(16, 4, 6)).Cast<float>(), v => Assert.Equal(0f, v));

        var pca = Pca.Fit(TestData.Uniform(17, 20, 5), 2);
        Assert.Equal(pca.Components, Core.Interop.toArray2D(pca.CoreFit.Components));
        Assert.Equal(new long[] { 2, 5 }, pca.CoreFit.Components.shape);
    }
}
