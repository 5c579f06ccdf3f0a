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

    private VariationalAutoencoder(VaeOptions options, Core.Vae.VariationalAutoencoder model) => (Options, _model) = (options, model);

    private static Core.Vae.VaeConfig ToConfig(VaeOptions o) => new(
        o.InputSize, o.LatentSize, Convert.ToList(o.HiddenSizes, "HiddenSizes"),
        o.Likelihood == Likelihood.Bernoulli ? Core.Vae.Likelihood.Bernoulli : Core.Vae.Likelihood.Gaussian,
        o.KlEstimator == KlEstimator.Analytic ? Core.Vae.KlEstimator.Analytic : Core.Vae.KlEstimator.MonteCarlo,
        o.Samples, o.Beta, Core.Mlp.Activation.ReLU, Core.Mlp.Init.Uniform, o.Seed, o.Device ?? "auto");

    private static VaeOptions FromConfig(Core.Vae.VaeConfig c, string device) => new()
    {
        InputSize = c.InputSize, LatentSize = c.LatentSize, HiddenSizes = c.HiddenSizes.ToArray(),
        Likelihood = c.Likelihood.IsBernoulli ? Likelihood.Bernoulli : Likelihood.Gaussian,
        KlEstimator = c.KlEstimator.IsAnalytic ? KlEstimator.Analytic : KlEstimator.MonteCarlo,
        Samples = c.Samples, Beta = c.Beta, Seed = c.Seed, Device = device,
    };

    /// <summary>The architecture and objective this model was built with.</summary>
    public VaeOptions Options { get; }

    /// <summary>The F# core model (TorchSharp modules and tensors, no copies), for F# and advanced C# users.</summary>
    public Core.Vae.VariationalAutoencoder CoreModel => _model;

    /// <summary>Trains on the rows of <paramref name="data"/>; <see cref="EpochReport.TrainLoss"/> is −ELBO per example
    /// (β-weighted when <see cref="VaeOptions.Beta"/> ≠ 1).</summary>
    public TrainingHistory Fit(float[,] data, TrainingOptions? options = null)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Convert.Fit(options, config => _model.Fit(x, config));
    }

    /// <summary>The parameters of q(z|x): the mean and the log-variance, one row per example.</summary>
    public (float[,] Mean, float[,] LogVariance) Encode(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        var (mean, logVariance) = _model.Encode(x);
        return (Convert.ToArray(mean), Convert.ToArray(logVariance));
    }

    /// <summary>E[x|z]: Bernoulli probabilities in [0, 1], or Gaussian means, one row per latent vector.</summary>
    public float[,] Decode(float[,] latent)
    {
        using var z = Convert.ToTensor(latent, nameof(latent));
        return Convert.ToArray(_model.Decode(z));
    }

    /// <summary>Decodes the posterior mean of each example.</summary>
    public float[,] Reconstruct(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Convert.ToArray(_model.Reconstruct(x));
    }

    /// <summary>Decodes <paramref name="count"/> draws z ~ N(0, I).</summary>
    public float[,] Sample(int count, int seed = 0) => Convert.ToArray(_model.Sample(count, seed));

    /// <summary>The ELBO per example (closed-form KL, <paramref name="samples"/> draws of z), mean over rows, in nats.</summary>
    public double Elbo(float[,] data, int samples = 1, int seed = 0)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return _model.Elbo(x, samples, seed);
    }

    /// <summary>The importance-weighted estimate log (1/K) Σ p(x, z_k)/q(z_k|x) of log p(x), mean over rows, in nats.</summary>
    public double LogLikelihood(float[,] data, int importanceSamples = 5000, int seed = 0)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return _model.LogLikelihood(x, importanceSamples, seed);
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

    /// <summary>Frees the native memory of the parameters; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose() => ((IDisposable)_model).Dispose();
}
