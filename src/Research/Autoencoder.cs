using TorchSharp;
using Core = Research.Core;

namespace Research;

/// <summary>A deterministic autoencoder x ↦ g(f(x)): ReLU or tanh MLPs with a sigmoid output (data in [0, 1];
/// other values are an <see cref="ArgumentException"/>), or fully linear (any real data), trained on mean
/// squared error per element.</summary>
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
        new(o.InputSize, o.LatentSize, Convert.ToList(o.HiddenSizes, "HiddenSizes"), o.Linear, Convert.ToCore(o.Activation),
            Convert.ToInit(o.InitStd), Convert.ToCore(o.Convolutional), o.Seed, o.Device ?? "auto");

    /// <summary>The architecture this model was built with.</summary>
    public AutoencoderOptions Options { get; }

    /// <summary>The F# core model (TorchSharp modules and tensors, no copies), for F# and advanced C# users.</summary>
    public Core.Autoencoder.Autoencoder CoreModel => _model;

    // Every data-taking method has three overloads (float[,], jagged float[][], a row-major span with a row
    // count); each converts its input to a tensor with Convert.ToTensor and calls one private tensor method.

    /// <summary>Trains on the rows of <paramref name="data"/>; the loss is the mean squared error per element.</summary>
    public TrainingHistory Fit(float[,] data, TrainingOptions? options = null) => FitTensor(Convert.ToTensor(data, nameof(data)), options);

    /// <summary>Trains on jagged rows (one array per example, all of one length); see <see cref="Fit(float[,], TrainingOptions?)"/>.</summary>
    public TrainingHistory Fit(float[][] rows, TrainingOptions? options = null) => FitTensor(Convert.ToTensor(rows), options);

    /// <summary>Trains on row-major values split into <paramref name="rows"/> rows; see <see cref="Fit(float[,], TrainingOptions?)"/>.</summary>
    public TrainingHistory Fit(ReadOnlySpan<float> values, int rows, TrainingOptions? options = null) =>
        FitTensor(Convert.ToTensor(values, rows), options);

    private TrainingHistory FitTensor(torch.Tensor x, TrainingOptions? options)
    {
        using (x) return Convert.Fit(options, config => _model.Fit(x, config));
    }

    /// <summary>The codes f(x), one row per example.</summary>
    public float[,] Encode(float[,] data) => EncodeTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>The codes f(x) of jagged rows (one array per example, all of one length), one row per example.</summary>
    public float[,] Encode(float[][] rows) => EncodeTensor(Convert.ToTensor(rows));

    /// <summary>The codes f(x) of row-major values split into <paramref name="rows"/> rows, one row per example.</summary>
    public float[,] Encode(ReadOnlySpan<float> values, int rows) => EncodeTensor(Convert.ToTensor(values, rows));

    private float[,] EncodeTensor(torch.Tensor x)
    {
        using (x) return Convert.ToArray(_model.Encode(x));
    }

    /// <summary>The decoded g(z), one row per code.</summary>
    public float[,] Decode(float[,] codes) => DecodeTensor(Convert.ToTensor(codes, nameof(codes)));

    /// <summary>The decoded g(z) of jagged codes (one array of <see cref="AutoencoderOptions.LatentSize"/> values per code).</summary>
    public float[,] Decode(float[][] rows) => DecodeTensor(Convert.ToTensor(rows));

    /// <summary>The decoded g(z) of row-major codes split into <paramref name="rows"/> rows.</summary>
    public float[,] Decode(ReadOnlySpan<float> values, int rows) => DecodeTensor(Convert.ToTensor(values, rows));

    private float[,] DecodeTensor(torch.Tensor z)
    {
        using (z) return Convert.ToArray(_model.Decode(z));
    }

    /// <summary>g(f(x)), one row per example.</summary>
    public float[,] Reconstruct(float[,] data) => ReconstructTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>g(f(x)) of jagged rows (one array per example, all of one length), one row per example.</summary>
    public float[,] Reconstruct(float[][] rows) => ReconstructTensor(Convert.ToTensor(rows));

    /// <summary>g(f(x)) of row-major values split into <paramref name="rows"/> rows, one row per example.</summary>
    public float[,] Reconstruct(ReadOnlySpan<float> values, int rows) => ReconstructTensor(Convert.ToTensor(values, rows));

    private float[,] ReconstructTensor(torch.Tensor x)
    {
        using (x) return Convert.ToArray(_model.Reconstruct(x));
    }

    /// <summary>Mean squared error per element of the reconstructions.</summary>
    public double ReconstructionError(float[,] data) => ErrorTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>Mean squared error per element of the reconstructions of jagged rows (one array per example, all of one length).</summary>
    public double ReconstructionError(float[][] rows) => ErrorTensor(Convert.ToTensor(rows));

    /// <summary>Mean squared error per element of the reconstructions of row-major values split into <paramref name="rows"/> rows.</summary>
    public double ReconstructionError(ReadOnlySpan<float> values, int rows) => ErrorTensor(Convert.ToTensor(values, rows));

    private double ErrorTensor(torch.Tensor x)
    {
        using (x) return _model.ReconstructionError(x);
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
            Linear = c.Linear, Activation = Convert.FromCore(c.Activation), InitStd = Convert.FromInit(c.Init),
            Convolutional = Convert.FromCore(c.Convolutional), Seed = c.Seed, Device = device,
        };
        return new Autoencoder(options, model);
    }

    /// <summary>Writes the parameters to <paramref name="path"/> as a PyTorch state_dict that <c>torch.load</c> reads
    /// (float32, the parameters only), atomically (a temp file, then a rename), under the names of the PyTorch
    /// module in docs/pytorch.md (<c>encoder.0.weight</c>, …, <c>decoder.0.weight</c>, …).</summary>
    public void ExportPyTorch(string path) => Core.Autoencoder.exportPyTorch(path, _model);

    /// <summary>Builds an autoencoder with <paramref name="options"/> and reads its parameters from a state_dict that
    /// PyTorch saved for the module in docs/pytorch.md; errors as for
    /// <see cref="VariationalAutoencoder.ImportPyTorch(string, VaeOptions)"/>.</summary>
    public static Autoencoder ImportPyTorch(string path, AutoencoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.HiddenSizes, "options.HiddenSizes");
        var copy = options with { HiddenSizes = [.. options.HiddenSizes] };
        return new Autoencoder(copy, Core.Autoencoder.importPyTorch(path, ToConfig(copy)));
    }

    /// <summary>Frees the native memory of the parameters; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose() => ((IDisposable)_model).Dispose();
}
