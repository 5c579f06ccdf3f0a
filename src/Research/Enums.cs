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

/// <summary>How <see cref="VariationalAutoencoder.EstimateLogLikelihood"/> estimates log p(x).</summary>
public enum LikelihoodEstimator
{
    /// <summary>Importance sampling from q(z|x) (K = samples), the estimator of <see cref="VariationalAutoencoder.LogLikelihood(float[,], int, int)"/>.</summary>
    ImportanceSampling,
    /// <summary>Annealed importance sampling (Wu et al. 2017): a geometric path from the prior to the posterior with HMC
    /// transitions, samples = chains per row; defaults: 500 intermediate distributions on a sigmoidal schedule, 10
    /// leapfrog steps, step size adapted to 65% acceptance (settable from F#: <c>Research.Core.Ais.Config</c>). It does not
    /// use the encoder, so it cross-checks importance sampling; it costs about 60 times more per sample.</summary>
    AnnealedImportanceSampling,
}

/// <summary>An estimate of the mean log p(x) over a data set, with what a reader needs to trust it.</summary>
/// <param name="Mean">The mean over rows of each row's estimate of log p(x), in nats.</param>
/// <param name="StandardError">The standard error of <paramref name="Mean"/> over rows (sample standard deviation / √n).</param>
/// <param name="EffectiveSampleSize">The mean over rows of the importance weights' (Σw)²/Σw² (of AIS's final weights):
/// near <paramref name="Samples"/>, the weights are even; near 1, one sample dominates and the estimate is unreliable
/// (a lower bound that can sit far below log p(x)).</param>
/// <param name="Samples">Importance samples or AIS chains per row.</param>
public sealed record LogLikelihoodEstimate(double Mean, double StandardError, double EffectiveSampleSize, int Samples);
