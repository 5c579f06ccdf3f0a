using TorchSharp;
using Core = Research.Core;

namespace Research;

/// <summary>Closed-form Kullback–Leibler divergences of diagonal Gaussians.</summary>
public static class GaussianKl
{
    /// <summary>KL( N(mean, diag(exp(logVariance))) ‖ N(0, I) ) = ½ Σ (σ² + μ² − log σ² − 1), in nats.</summary>
    /// <exception cref="ArgumentException">The spans differ in length, are empty, or hold NaN or infinity.</exception>
    public static double ToStandardNormal(ReadOnlySpan<float> mean, ReadOnlySpan<float> logVariance)
    {
        if (mean.Length != logVariance.Length)
            throw new ArgumentException($"mean has {mean.Length} values but logVariance has {logVariance.Length}: they must match.", nameof(logVariance));
        if (mean.Length == 0) throw new ArgumentException("mean is empty: at least one dimension is required.", nameof(mean));
        using var scope = torch.NewDisposeScope();  // frees the float64 copies and the terms of the sum
        using var mu = Core.Interop.ofSpan(mean, 1, torch.CPU);
        using var logVar = Core.Interop.ofSpan(logVariance, 1, torch.CPU);
        Core.Validate.matrix(nameof(mean), mean.Length, mu);
        Core.Validate.matrix(nameof(logVariance), mean.Length, logVar);
        using var kl = Core.Gaussian.klToStandardNormal(mu.to_type(torch.ScalarType.Float64), logVar.to_type(torch.ScalarType.Float64));
        return kl.item<double>();
    }
}
