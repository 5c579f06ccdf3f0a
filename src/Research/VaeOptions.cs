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
    /// <summary>Seeds the initial weights.</summary>
    public int Seed { get; init; } = 0;
    /// <summary>"auto", "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; init; } = "auto";
}
