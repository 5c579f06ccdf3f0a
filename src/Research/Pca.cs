using Core = Research.Core;

namespace Research;

/// <summary>Principal component analysis by eigendecomposition of the sample covariance (float64 accumulation).</summary>
public static class Pca
{
    /// <summary>Fits the top <paramref name="components"/> principal directions of the rows of <paramref name="data"/>.</summary>
    /// <example><code>
    /// var pca = Pca.Fit(images, 50);
    /// float[,] codes = pca.Transform(testImages);
    /// </code></example>
    public static PcaModel Fit(float[,] data, int components)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return new PcaModel(Core.Pca.fit(x, components));
    }
}

/// <summary>A fitted PCA: mean, orthonormal components sorted by explained variance, and the projections.</summary>
public sealed class PcaModel
{
    private readonly Core.Pca.PcaFit _fit;

    internal PcaModel(Core.Pca.PcaFit fit)
    {
        _fit = fit;
        Mean = Core.Interop.toArray(fit.Mean);
        Components = Core.Interop.toArray2D(fit.Components);
    }

    /// <summary>The F# core fit (TorchSharp tensors), for F# and advanced C# users.</summary>
    public Core.Pca.PcaFit CoreFit => _fit;

    /// <summary>The number of components kept.</summary>
    public int ComponentCount => Components.GetLength(0);

    /// <summary>The mean of the training rows (length = features).</summary>
    public float[] Mean { get; }

    /// <summary>ComponentCount × features; orthonormal rows sorted by explained variance, descending.</summary>
    public float[,] Components { get; }

    /// <summary>The eigenvalues of the sample covariance (normalised by n − 1) of the kept components.</summary>
    public double[] ExplainedVariance => (double[])_fit.ExplainedVariance.Clone();

    /// <summary>Each kept eigenvalue over the total variance.</summary>
    public double[] ExplainedVarianceRatio => (double[])_fit.ExplainedVarianceRatio.Clone();

    /// <summary>The codes (x − mean) Cᵀ, n × ComponentCount.</summary>
    public float[,] Transform(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Convert.ToArray(Core.Pca.transform(_fit, x));
    }

    /// <summary>The reconstructions codes C + mean, n × features.</summary>
    public float[,] InverseTransform(float[,] codes)
    {
        using var z = Convert.ToTensor(codes, nameof(codes));
        return Convert.ToArray(Core.Pca.inverseTransform(_fit, z));
    }

    /// <summary>Mean squared error per element of InverseTransform(Transform(data)) against data.</summary>
    public double ReconstructionError(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Core.Pca.reconstructionError(_fit, x);
    }
}
