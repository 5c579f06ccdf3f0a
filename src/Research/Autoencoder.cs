using TorchSharp;
using Core = Research.Core;

namespace Research;

/// <summary>A deterministic autoencoder x ↦ g(f(x)): ReLU MLPs with a sigmoid output, or fully linear,
/// trained on mean squared error per element.</summary>
/// <example>
/// <code>
/// using var ae = new Autoencoder(new AutoencoderOptions { InputSize = 784, LatentSize = 20, HiddenSizes = [256, 64] });
/// ae.Fit(images, new TrainingOptions { Epochs = 5 });
/// double mse = ae.ReconstructionError(testImages);
/// </code>
/// </example>
public sealed class Autoencoder : IDisposable
{
    private readonly Core.Autoencoder.Autoencoder _model;

    /// <summary>Builds an untrained autoencoder; throws <see cref="ArgumentException"/> for bad sizes or an unknown device.</summary>
    public Autoencoder(AutoencoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.HiddenSizes, "options.HiddenSizes");
        Options = options with { HiddenSizes = [.. options.HiddenSizes] };  // a private copy: later edits to the caller's array do not leak in
        _model = new Core.Autoencoder.Autoencoder(ToConfig(Options));
    }

    private Autoencoder(AutoencoderOptions options, Core.Autoencoder.Autoencoder model) => (Options, _model) = (options, model);

    private static Core.Autoencoder.AutoencoderConfig ToConfig(AutoencoderOptions o) =>
        new(o.InputSize, o.LatentSize, Convert.ToList(o.HiddenSizes, "HiddenSizes"), o.Linear, o.Seed, o.Device ?? "auto");

    /// <summary>The architecture this model was built with.</summary>
    public AutoencoderOptions Options { get; }

    /// <summary>The F# core model (TorchSharp modules and tensors, no copies), for F# and advanced C# users.</summary>
    public Core.Autoencoder.Autoencoder CoreModel => _model;

    /// <summary>Trains on the rows of <paramref name="data"/>; the loss is the mean squared error per element.</summary>
    public TrainingHistory Fit(float[,] data, TrainingOptions? options = null)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Convert.Fit(options, config => _model.Fit(x, config));
    }

    /// <summary>The codes f(x), one row per example.</summary>
    public float[,] Encode(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Convert.ToArray(_model.Encode(x));
    }

    /// <summary>The decoded g(z), one row per code.</summary>
    public float[,] Decode(float[,] codes)
    {
        using var z = Convert.ToTensor(codes, nameof(codes));
        return Convert.ToArray(_model.Decode(z));
    }

    /// <summary>g(f(x)), one row per example.</summary>
    public float[,] Reconstruct(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Convert.ToArray(_model.Reconstruct(x));
    }

    /// <summary>Mean squared error per element of the reconstructions.</summary>
    public double ReconstructionError(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return _model.ReconstructionError(x);
    }

    /// <summary>Writes the model to <paramref name="path"/> atomically (a temp file, then a rename).</summary>
    public void Save(string path) => Core.Autoencoder.save(path, _model);

    /// <summary>Reads a model written by <see cref="Save"/>; throws <see cref="InvalidDataException"/> for a file
    /// that is not an autoencoder checkpoint or is damaged.</summary>
    public static Autoencoder Load(string path, string device = "auto")
    {
        var model = Core.Autoencoder.load(path, device);
        var c = model.Config;
        var options = new AutoencoderOptions
        {
            InputSize = c.InputSize, LatentSize = c.LatentSize, HiddenSizes = c.HiddenSizes.ToArray(),
            Linear = c.Linear, Seed = c.Seed, Device = device,
        };
        return new Autoencoder(options, model);
    }

    /// <summary>Frees the native memory of the parameters; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose() => ((IDisposable)_model).Dispose();
}
