using TorchSharp;
using Core = Research.Core;

namespace Research;

/// <summary>The variational autoencoder of Kingma &amp; Welling (2013): Gaussian q(z|x), Bernoulli or Gaussian
/// p(x|z), N(0, I) prior, trained on the SGVB estimate of the evidence lower bound.</summary>
/// <example>
/// <code>
/// using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = 784, LatentSize = 20 });
/// var history = vae.Fit(images, new TrainingOptions { Epochs = 10 });
/// double elbo = vae.Elbo(testImages);
/// </code>
/// </example>
public sealed class VariationalAutoencoder : IDisposable
{
    private readonly Core.Vae.VariationalAutoencoder _model;

    /// <summary>Builds an untrained VAE; throws <see cref="ArgumentException"/> for bad sizes or an unknown device.</summary>
    public VariationalAutoencoder(VaeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.HiddenSizes, "options.HiddenSizes");
        Options = options with { HiddenSizes = [.. options.HiddenSizes] };  // a private copy of the caller's array
        _model = new Core.Vae.VariationalAutoencoder(ToConfig(Options));
    }

    /// <summary>A VAE on research code's own TorchSharp modules. <paramref name="encoder"/> maps [n, InputSize] to
    /// [n, 2·LatentSize] (the means, then the log-variances of q(z|x)); <paramref name="decoder"/> maps [n, LatentSize]
    /// to [n, InputSize] Bernoulli logits, or [n, 2·InputSize] Gaussian means then log-variances.
    /// <see cref="VaeOptions.HiddenSizes"/>, <see cref="VaeOptions.Activation"/>, <see cref="VaeOptions.InitStd"/> and
    /// <see cref="VaeOptions.Convolutional"/> are not used, and the modules keep the weights they were built with
    /// (<see cref="VaeOptions.Seed"/> seeds the training and sampling noise only). The model owns the modules: Dispose
    /// disposes them. Every other member works as for the built-in networks; training goes through autograd. A module
    /// whose output shape is wrong is an <see cref="ArgumentException"/> naming both shapes (a two-row trial, here).</summary>
    public VariationalAutoencoder(VaeOptions options, torch.nn.Module<torch.Tensor, torch.Tensor> encoder,
                                  torch.nn.Module<torch.Tensor, torch.Tensor> decoder)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(decoder);
        Options = options with { HiddenSizes = [.. options.HiddenSizes ?? []] };
        _model = new Core.Vae.VariationalAutoencoder(ToConfig(Options with { HiddenSizes = [], Convolutional = null }), encoder, decoder);
    }

    private VariationalAutoencoder(VaeOptions options, Core.Vae.VariationalAutoencoder model) => (Options, _model) = (options, model);

    private static Core.Vae.VaeConfig ToConfig(VaeOptions o) => new(
        o.InputSize, o.LatentSize, Convert.ToList(o.HiddenSizes, "HiddenSizes"),
        o.Likelihood == Likelihood.Bernoulli ? Core.Vae.Likelihood.Bernoulli : Core.Vae.Likelihood.Gaussian,
        o.KlEstimator == KlEstimator.Analytic ? Core.Vae.KlEstimator.Analytic : Core.Vae.KlEstimator.MonteCarlo,
        o.Samples, o.Beta,
        o.Objective == Objective.Elbo ? Core.Vae.Objective.Elbo : Core.Vae.Objective.ImportanceWeighted,
        Convert.ToCore(o.Activation), Convert.ToInit(o.InitStd), Convert.ToCore(o.Convolutional), o.Seed, o.Device ?? "auto");

    private static VaeOptions FromConfig(Core.Vae.VaeConfig c, string device) => new()
    {
        InputSize = c.InputSize, LatentSize = c.LatentSize, HiddenSizes = c.HiddenSizes.ToArray(),
        Likelihood = c.Likelihood.IsBernoulli ? Likelihood.Bernoulli : Likelihood.Gaussian,
        KlEstimator = c.KlEstimator.IsAnalytic ? KlEstimator.Analytic : KlEstimator.MonteCarlo,
        Samples = c.Samples, Beta = c.Beta, Objective = c.Objective.IsElbo ? Objective.Elbo : Objective.ImportanceWeighted,
        Activation = Convert.FromCore(c.Activation), InitStd = Convert.FromInit(c.Init), Convolutional = Convert.FromCore(c.Convolutional),
        Seed = c.Seed, Device = device,
    };

    /// <summary>The architecture and objective this model was built with.</summary>
    public VaeOptions Options { get; }

    /// <summary>The F# core model (TorchSharp modules and tensors, no copies), for F# and advanced C# users.</summary>
    public Core.Vae.VariationalAutoencoder CoreModel => _model;

    /// <summary>Trains on the rows of <paramref name="data"/>; <see cref="EpochReport.TrainLoss"/> is −ELBO per example
    /// (β-weighted when <see cref="VaeOptions.Beta"/> ≠ 1).</summary>
    public TrainingHistory Fit(float[,] data, TrainingOptions? options = null) => FitTensor(Convert.ToTensor(data, nameof(data)), options);

    // Every data-taking method has three overloads (float[,], jagged float[][], a row-major span with a row
    // count); each converts its input to a tensor with Convert.ToTensor and calls one private tensor method.

    /// <summary>Trains on jagged rows (one array per example, all of one length); see <see cref="Fit(float[,], TrainingOptions?)"/>.</summary>
    public TrainingHistory Fit(float[][] rows, TrainingOptions? options = null) => FitTensor(Convert.ToTensor(rows), options);

    /// <summary>Trains on row-major values split into <paramref name="rows"/> rows; see <see cref="Fit(float[,], TrainingOptions?)"/>.</summary>
    public TrainingHistory Fit(ReadOnlySpan<float> values, int rows, TrainingOptions? options = null) =>
        FitTensor(Convert.ToTensor(values, rows), options);

    private TrainingHistory FitTensor(torch.Tensor x, TrainingOptions? options)
    {
        using (x) return Convert.Fit(options, config => _model.Fit(x, config));
    }

    /// <summary>The parameters of q(z|x): the mean and the log-variance, one row per example.</summary>
    public (float[,] Mean, float[,] LogVariance) Encode(float[,] data) => EncodeTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>The parameters of q(z|x) for jagged rows (one array per example, all of one length): the mean and the log-variance, one row per example.</summary>
    public (float[,] Mean, float[,] LogVariance) Encode(float[][] rows) => EncodeTensor(Convert.ToTensor(rows));

    /// <summary>The parameters of q(z|x) for row-major values split into <paramref name="rows"/> rows: the mean and the log-variance, one row per example.</summary>
    public (float[,] Mean, float[,] LogVariance) Encode(ReadOnlySpan<float> values, int rows) => EncodeTensor(Convert.ToTensor(values, rows));

    private (float[,] Mean, float[,] LogVariance) EncodeTensor(torch.Tensor x)
    {
        using (x)
        {
            var (mean, logVariance) = _model.Encode(x);
            return (Convert.ToArray(mean), Convert.ToArray(logVariance));
        }
    }

    /// <summary>E[x|z]: Bernoulli probabilities in [0, 1], or Gaussian means, one row per latent vector.</summary>
    public float[,] Decode(float[,] latent) => DecodeTensor(Convert.ToTensor(latent, nameof(latent)));

    /// <summary>E[x|z] of jagged latent vectors (one array of <see cref="VaeOptions.LatentSize"/> values each), one row per vector.</summary>
    public float[,] Decode(float[][] rows) => DecodeTensor(Convert.ToTensor(rows));

    /// <summary>E[x|z] of row-major latent vectors split into <paramref name="rows"/> rows, one row per vector.</summary>
    public float[,] Decode(ReadOnlySpan<float> values, int rows) => DecodeTensor(Convert.ToTensor(values, rows));

    private float[,] DecodeTensor(torch.Tensor z)
    {
        using (z) return Convert.ToArray(_model.Decode(z));
    }

    /// <summary>Decodes the posterior mean of each example.</summary>
    public float[,] Reconstruct(float[,] data) => ReconstructTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>Decodes the posterior mean of each of jagged rows (one array per example, all of one length).</summary>
    public float[,] Reconstruct(float[][] rows) => ReconstructTensor(Convert.ToTensor(rows));

    /// <summary>Decodes the posterior mean of each of row-major values split into <paramref name="rows"/> rows.</summary>
    public float[,] Reconstruct(ReadOnlySpan<float> values, int rows) => ReconstructTensor(Convert.ToTensor(values, rows));

    private float[,] ReconstructTensor(torch.Tensor x)
    {
        using (x) return Convert.ToArray(_model.Reconstruct(x));
    }

    /// <summary>Decodes <paramref name="count"/> draws z ~ N(0, I).</summary>
    public float[,] Sample(int count, int seed = 0) => Convert.ToArray(_model.Sample(count, seed));

    /// <summary>Burda et al.'s active units: how many latent dimensions j have Var_x(E_q[z_j | x]) above
    /// <paramref name="threshold"/> over the rows of <paramref name="data"/> (sample variance; at least 2 rows). A
    /// dimension that is not active encodes nothing about x.</summary>
    public int ActiveUnits(float[,] data, double threshold = 0.01)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return _model.ActiveUnits(x, threshold);
    }

    /// <summary>The mean over the rows of KL(q(z_j|x) ‖ N(0, 1)) for each latent dimension j, in nats; they sum to the
    /// ELBO's KL term. Values near 0 mark collapsed dimensions.</summary>
    public double[] KlPerDimension(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return _model.KlPerDimension(x);
    }

    /// <summary>Mean squared error per element of <see cref="Reconstruct(float[,])"/> against the data, as for the
    /// autoencoder and PCA (so the three can be set side by side).</summary>
    public double ReconstructionError(float[,] data) => ErrorTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>Mean squared error per element of the reconstructions of jagged rows (one array per example, all of one length).</summary>
    public double ReconstructionError(float[][] rows) => ErrorTensor(Convert.ToTensor(rows));

    /// <summary>Mean squared error per element of the reconstructions of row-major values split into <paramref name="rows"/> rows.</summary>
    public double ReconstructionError(ReadOnlySpan<float> values, int rows) => ErrorTensor(Convert.ToTensor(values, rows));

    private double ErrorTensor(torch.Tensor x)
    {
        using (x) return _model.ReconstructionError(x);
    }

    /// <summary>The ELBO per example (closed-form KL, <paramref name="samples"/> draws of z), mean over rows, in nats.</summary>
    public double Elbo(float[,] data, int samples = 1, int seed = 0) => ElboTensor(Convert.ToTensor(data, nameof(data)), samples, seed);

    /// <summary>The ELBO per example of jagged rows (one array per example, all of one length); see <see cref="Elbo(float[,], int, int)"/>.</summary>
    public double Elbo(float[][] rows, int samples = 1, int seed = 0) => ElboTensor(Convert.ToTensor(rows), samples, seed);

    /// <summary>The ELBO per example of row-major values split into <paramref name="rows"/> rows; see <see cref="Elbo(float[,], int, int)"/>.</summary>
    public double Elbo(ReadOnlySpan<float> values, int rows, int samples = 1, int seed = 0) =>
        ElboTensor(Convert.ToTensor(values, rows), samples, seed);

    private double ElboTensor(torch.Tensor x, int samples, int seed)
    {
        using (x) return _model.Elbo(x, samples, seed);
    }

    /// <summary>The importance-weighted estimate log (1/K) Σ p(x, z_k)/q(z_k|x) of log p(x), mean over rows, in nats.
    /// Its cost grows with K × rows: the default K = 5000 takes 14–32 s for 500 MNIST images of a 784-400-20 VAE on a
    /// 2-core machine (measured here), where three epochs of training on 1,000 images take 0.2 s; K = 100 is enough
    /// to follow training, and <see cref="EstimateLogLikelihood"/> adds the error bar.</summary>
    public double LogLikelihood(float[,] data, int importanceSamples = 5000, int seed = 0) =>
        LogLikelihoodTensor(Convert.ToTensor(data, nameof(data)), importanceSamples, seed);

    /// <summary>The importance-weighted estimate of log p(x) for jagged rows (one array per example, all of one length); see <see cref="LogLikelihood(float[,], int, int)"/>.</summary>
    public double LogLikelihood(float[][] rows, int importanceSamples = 5000, int seed = 0) =>
        LogLikelihoodTensor(Convert.ToTensor(rows), importanceSamples, seed);

    /// <summary>The importance-weighted estimate of log p(x) for row-major values split into <paramref name="rows"/> rows; see <see cref="LogLikelihood(float[,], int, int)"/>.</summary>
    public double LogLikelihood(ReadOnlySpan<float> values, int rows, int importanceSamples = 5000, int seed = 0) =>
        LogLikelihoodTensor(Convert.ToTensor(values, rows), importanceSamples, seed);

    private double LogLikelihoodTensor(torch.Tensor x, int importanceSamples, int seed)
    {
        using (x) return _model.LogLikelihood(x, importanceSamples, seed);
    }

    /// <summary>An estimate of log p(x) with its standard error over rows and the importance weights' effective sample
    /// size, by importance sampling (<paramref name="samples"/> = K; its Mean equals, to float32 rounding, <see cref="LogLikelihood(float[,], int, int)"/>
    /// for the same seed) or annealed importance sampling (<paramref name="samples"/> = chains per row). With K = 5000,
    /// importance sampling takes 14–32 s for 500 MNIST images of a 784-400-20 VAE here; AIS with 16 chains about
    /// 1.8 s per image.</summary>
    /// <example><code>
    /// var ll = vae.EstimateLogLikelihood(test, LikelihoodEstimator.ImportanceSampling, samples: 2000);
    /// Console.WriteLine($"log p(x) ≈ {ll.Mean:F2} ± {ll.StandardError:F2} nats (ESS {ll.EffectiveSampleSize:F0} of {ll.Samples})");
    /// </code></example>
    public LogLikelihoodEstimate EstimateLogLikelihood(float[,] data, LikelihoodEstimator estimator = LikelihoodEstimator.ImportanceSampling,
                                                       int samples = 5000, int seed = 0)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        var core = estimator switch
        {
            LikelihoodEstimator.ImportanceSampling => Core.Vae.LikelihoodEstimator.ImportanceSampling,
            LikelihoodEstimator.AnnealedImportanceSampling => Core.Vae.LikelihoodEstimator.NewAnnealedImportanceSampling(Core.Ais.defaults),
            _ => throw new ArgumentException($"Unknown estimator {estimator}.", nameof(estimator)),
        };
        var e = _model.EstimateLogLikelihood(x, core, samples, seed);
        return new LogLikelihoodEstimate(e.Mean, e.StandardError, e.EffectiveSampleSize, e.Samples);
    }

    /// <summary>Writes the model to <paramref name="path"/> atomically (a temp file, then a rename).</summary>
    public void Save(string path) => Core.Vae.save(path, _model);

    /// <summary>Reads a model written by <see cref="Save"/>; throws <see cref="InvalidDataException"/> for a file
    /// that is not a VAE checkpoint or is damaged.</summary>
    public static VariationalAutoencoder Load(string path, string device = "auto")
    {
        var model = Core.Vae.load(path, device);
        return new VariationalAutoencoder(FromConfig(model.Config, device), model);
    }

    /// <summary>Reads the weights of a model saved with its own modules (see
    /// <see cref="VariationalAutoencoder(VaeOptions, torch.nn.Module{torch.Tensor, torch.Tensor}, torch.nn.Module{torch.Tensor, torch.Tensor})"/>)
    /// into freshly built <paramref name="encoder"/> and <paramref name="decoder"/> of the same architecture. A file whose
    /// parameter names or shapes differ from the modules' is an <see cref="InvalidDataException"/> naming the first
    /// difference, and leaves the modules unchanged.</summary>
    public static VariationalAutoencoder Load(string path, torch.nn.Module<torch.Tensor, torch.Tensor> encoder,
                                              torch.nn.Module<torch.Tensor, torch.Tensor> decoder, string device = "auto")
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(decoder);
        var model = Core.Vae.loadInto(path, encoder, decoder, device);
        return new VariationalAutoencoder(FromConfig(model.Config, device), model);
    }

    /// <summary>Writes the parameters to <paramref name="path"/> as a PyTorch state_dict that <c>torch.load</c> reads
    /// (float32, the parameters only: no buffers, no metadata), atomically (a temp file, then a rename). The names
    /// are those of the PyTorch module in docs/pytorch.md: <c>encoder.0.weight</c>, <c>encoder.0.bias</c>,
    /// <c>encoder.2.weight</c>, …, <c>decoder.0.weight</c>, …, so <c>model.load_state_dict(torch.load(path))</c> works.</summary>
    public void ExportPyTorch(string path) => Core.Vae.exportPyTorch(path, _model);

    /// <summary>Builds a VAE with <paramref name="options"/> and reads its parameters from a state_dict that PyTorch
    /// saved (<c>torch.save(model.state_dict(), path)</c>, float32 or float64) for the module in docs/pytorch.md.
    /// Bad options are an <see cref="ArgumentException"/>; a file that is not a state_dict, is damaged, or holds a
    /// parameter that is missing, extra or shaped differently from the options' architecture is an
    /// <see cref="InvalidDataException"/> naming it (with both shapes), and nothing is built.</summary>
    public static VariationalAutoencoder ImportPyTorch(string path, VaeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.HiddenSizes, "options.HiddenSizes");
        var copy = options with { HiddenSizes = [.. options.HiddenSizes] };
        return new VariationalAutoencoder(copy, Core.Vae.importPyTorch(path, ToConfig(copy)));
    }

    /// <summary>Frees the native memory of the parameters; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose() => ((IDisposable)_model).Dispose();
}
