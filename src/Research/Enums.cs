namespace Research;

/// <summary>The decoder's observation model p(x | z).</summary>
public enum Likelihood
{
    /// <summary>Independent Bernoulli pixels; data must lie in [0, 1].</summary>
    Bernoulli,
    /// <summary>Independent Gaussians with a learned mean and log-variance per feature.</summary>
    Gaussian,
}

/// <summary>How the KL term of the ELBO is estimated (Kingma &amp; Welling, section 2.3).</summary>
public enum KlEstimator
{
    /// <summary>SGVB estimator B: the closed-form KL to the standard normal prior.</summary>
    Analytic,
    /// <summary>SGVB estimator A: log q(z|x) − log p(z) at the sampled z.</summary>
    MonteCarlo,
}

/// <summary>The stochastic gradient method used by <c>Fit</c>.</summary>
public enum Optimizer
{
    /// <summary>Adam (Kingma &amp; Ba, 2014) with the default betas (0.9, 0.999).</summary>
    Adam,
    /// <summary>Adagrad (Duchi et al., 2011), the optimiser of the AEVB paper.</summary>
    Adagrad,
}

/// <summary>The nonlinearity between hidden layers.</summary>
public enum Activation
{
    /// <summary>max(0, x), the default of modern autoencoders.</summary>
    ReLU,
    /// <summary>tanh(x), the hidden units of the AEVB paper.</summary>
    Tanh,
}

/// <summary>What a <see cref="VariationalAutoencoder"/> maximises in training.</summary>
public enum Objective
{
    /// <summary>The evidence lower bound (its KL term weighted by <see cref="VaeOptions.Beta"/>).</summary>
    Elbo,
    /// <summary>Burda et al.'s importance-weighted bound log (1/K) Σ_k p(x, z_k)/q(z_k|x), K = <see cref="VaeOptions.Samples"/>
    /// (the IWAE); <see cref="VaeOptions.Beta"/> must be 1.</summary>
    ImportanceWeighted,
}

/// <summary>The shape of the images a convolutional model reads: each data row holds one image in C-H-W order.</summary>
/// <param name="Channels">C, e.g. 1 for MNIST.</param>
/// <param name="Height">H, divisible by 2 for every convolution.</param>
/// <param name="Width">W, divisible by 2 for every convolution.</param>
public sealed record ImageShape(int Channels, int Height, int Width);
