using Core = Research.Core;

namespace Research;

/// <summary>The architecture and objective of a <see cref="VariationalAutoencoder"/>. The defaults are the
/// standard PyTorch example: one hidden layer of 400 ReLU units, Bernoulli decoder, analytic KL, L = 1.</summary>
public sealed record VaeOptions
{
    /// <summary>Features per example (784 for MNIST).</summary>
    public required int InputSize { get; init; }
    /// <summary>Dimension of z; at most <see cref="InputSize"/>.</summary>
    public required int LatentSize { get; init; }
    /// <summary>Encoder hidden layer sizes, input side first; the decoder mirrors them.</summary>
    public int[] HiddenSizes { get; init; } = [400];
    /// <summary>The decoder's observation model p(x|z).</summary>
    public Likelihood Likelihood { get; init; } = Likelihood.Bernoulli;
    /// <summary>SGVB estimator B (closed-form KL) or A (sampled KL).</summary>
    public KlEstimator KlEstimator { get; init; } = KlEstimator.Analytic;
    /// <summary>L, reparameterised samples per example per step.</summary>
    public int Samples { get; init; } = 1;
    /// <summary>Weight on the KL term (1 gives the true ELBO).</summary>
    public double Beta { get; init; } = 1.0;
    /// <summary>The training objective: the ELBO, or the IWAE bound with K = <see cref="Samples"/> (then
    /// <see cref="KlEstimator"/> is not used, <see cref="Beta"/> must be 1, and TrainLoss and ValidationLoss are the
    /// negative IWAE bound per example).</summary>
    public Objective Objective { get; init; } = Objective.Elbo;
    /// <summary>The nonlinearity between hidden layers.</summary>
    public Activation Activation { get; init; } = Activation.ReLU;
    /// <summary><c>null</c>: PyTorch's default initialisation (uniform in ±1/√fan-in); else every weight and bias
    /// ~ N(0, InitStd²). Must be finite and positive when set.</summary>
    public double? InitStd { get; init; } = null;
    /// <summary>Set: a convolutional encoder and a transposed-convolutional decoder for images of this shape
    /// (<see cref="InputSize"/> must equal C·H·W; rows are images in C-H-W order). <see cref="HiddenSizes"/> are then
    /// the channel counts of the stride-2 convolutions (kernel 4, padding 1), input side first, each followed by the
    /// activation and then a linear layer to the code; the decoder mirrors them. For MNIST with HiddenSizes = [32, 64]:
    /// Conv(1→32) to 14×14, Conv(32→64) to 7×7, Linear(3136 → code), and back. A shape that does not fit InputSize
    /// or the layers is an <see cref="ArgumentException"/> from the constructor.</summary>
    public ImageShape? Convolutional { get; init; } = null;
    /// <summary>Seeds the initial weights.</summary>
    public int Seed { get; init; } = 0;
    /// <summary>"auto", "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; init; } = "auto";

    /// <summary>Kingma &amp; Welling's MNIST model: 784-<paramref name="hiddenSize"/>-<paramref name="latentSize"/> MLPs
    /// with tanh hidden units, a Bernoulli decoder and their initialisation, every weight and bias ~ N(0, 0.01²)
    /// (the paper's "N(0, 0.01)", read as a standard deviation: <c>Research.Core.Vae.paper</c> says why).</summary>
    /// <example><code>
    /// using var vae = new VariationalAutoencoder(VaeOptions.Paper(latentSize: 20));
    /// vae.Fit(images, new TrainingOptions { Optimizer = Optimizer.Adagrad, LearningRate = 0.02, BatchSize = 100 });
    /// </code></example>
    public static VaeOptions Paper(int latentSize, int hiddenSize = 500)
    {
        var c = Core.Vae.paper(latentSize, hiddenSize);
        return new VaeOptions
        {
            InputSize = c.InputSize, LatentSize = c.LatentSize, HiddenSizes = [.. c.HiddenSizes],
            Activation = Convert.FromCore(c.Activation), InitStd = Convert.FromInit(c.Init),
        };
    }
}
