using TorchSharp;
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
    public static PcaModel Fit(float[,] data, int components) => FitTensor(Convert.ToTensor(data, nameof(data)), components);

    /// <summary>Fits the top <paramref name="components"/> principal directions of jagged rows (one array per example, all of one length).</summary>
    public static PcaModel Fit(float[][] rows, int components) => FitTensor(Convert.ToTensor(rows), components);

    /// <summary>Fits the top <paramref name="components"/> principal directions of row-major values split into <paramref name="rows"/> rows.</summary>
    /// <example><code>
    /// float[] pixels = new float[100 * 784];   // 100 images, row-major
    /// var pca = Pca.Fit(pixels, rows: 100, components: 10);
    /// </code></example>
    public static PcaModel Fit(ReadOnlySpan<float> values, int rows, int components) => FitTensor(Convert.ToTensor(values, rows), components);

    private static PcaModel FitTensor(torch.Tensor x, int components)
    {
        using (x) return new PcaModel(Core.Pca.fit(x, components));
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
    public float[,] Transform(float[,] data) => TransformTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>The codes (x − mean) Cᵀ of jagged rows (one array per example, all of one length), one row per example.</summary>
    public float[,] Transform(float[][] rows) => TransformTensor(Convert.ToTensor(rows));

    /// <summary>The codes (x − mean) Cᵀ of row-major values split into <paramref name="rows"/> rows, one row per example.</summary>
    public float[,] Transform(ReadOnlySpan<float> values, int rows) => TransformTensor(Convert.ToTensor(values, rows));

    private float[,] TransformTensor(torch.Tensor x)
    {
        using (x) return Convert.ToArray(Core.Pca.transform(_fit, x));
    }

    /// <summary>The reconstructions codes C + mean, n × features.</summary>
    public float[,] InverseTransform(float[,] codes) => InverseTransformTensor(Convert.ToTensor(codes, nameof(codes)));

    /// <summary>The reconstructions codes C + mean of jagged codes (one array of <see cref="ComponentCount"/> values each).</summary>
    public float[,] InverseTransform(float[][] rows) => InverseTransformTensor(Convert.ToTensor(rows));

    /// <summary>The reconstructions codes C + mean of row-major codes split into <paramref name="rows"/> rows.</summary>
    public float[,] InverseTransform(ReadOnlySpan<float> values, int rows) => InverseTransformTensor(Convert.ToTensor(values, rows));

    private float[,] InverseTransformTensor(torch.Tensor z)
    {
        using (z) return Convert.ToArray(Core.Pca.inverseTransform(_fit, z));
    }

    /// <summary>Mean squared error per element of InverseTransform(Transform(data)) against data.</summary>
    public double ReconstructionError(float[,] data) => ErrorTensor(Convert.ToTensor(data, nameof(data)));

    /// <summary>Mean squared error per element of projecting jagged rows (one array per example, all of one length) onto the components and back.</summary>
    public double ReconstructionError(float[][] rows) => ErrorTensor(Convert.ToTensor(rows));

    /// <summary>Mean squared error per element of projecting row-major values split into <paramref name="rows"/> rows onto the components and back.</summary>
    public double ReconstructionError(ReadOnlySpan<float> values, int rows) => ErrorTensor(Convert.ToTensor(values, rows));

    private double ErrorTensor(torch.Tensor x)
    {
        using (x) return Core.Pca.reconstructionError(_fit, x);
    }
}
