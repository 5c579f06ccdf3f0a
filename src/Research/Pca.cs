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

    /// <summary>Reads a model that <see cref="PcaModel.Save"/> wrote; the result equals the saved model bit for bit
    /// (<see cref="PcaModel.Mean"/>, <see cref="PcaModel.Components"/>, the explained variances and every
    /// <see cref="PcaModel.Transform(float[,])"/>). Throws <see cref="ArgumentException"/> for a null or empty path,
    /// <see cref="FileNotFoundException"/> for a missing file and <see cref="InvalidDataException"/> for a file that
    /// is not a PCA model (another model's file, naming its kind), is truncated or is damaged.</summary>
    /// <example><code>
    /// pca.Save("mnist.pca");
    /// PcaModel again = Pca.Load("mnist.pca");
    /// </code></example>
    public static PcaModel Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new PcaModel(Core.PcaFile.load(path));
    }

    /// <summary>Fits probabilistic PCA (Tipping &amp; Bishop) with <paramref name="components"/> latent dimensions by
    /// maximum likelihood, in closed form: the noise variance is the mean of the discarded eigenvalues of the
    /// (1/n) covariance. Requires 1 ≤ <paramref name="components"/> &lt; min(n − 1, features), so that some variance is
    /// left for the noise (<see cref="ArgumentOutOfRangeException"/> otherwise).</summary>
    /// <example><code>
    /// var ppca = Pca.FitProbabilistic(images, components: 20);
    /// double logLikelihood = ppca.LogLikelihood(testImages);   // exact, nats per image
    /// </code></example>
    public static ProbabilisticPcaModel FitProbabilistic(float[,] data, int components)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return new ProbabilisticPcaModel(Core.ProbabilisticPca.fit(x, components));
    }
}

/// <summary>A fitted probabilistic PCA, x = W z + μ + ε with z ~ N(0, I) and ε ~ N(0, σ² I): the linear-Gaussian model
/// whose exact likelihood linear VAEs are checked against.</summary>
public sealed class ProbabilisticPcaModel
{
    private readonly Core.ProbabilisticPca.PpcaModel _model;

    internal ProbabilisticPcaModel(Core.ProbabilisticPca.PpcaModel model)
    {
        _model = model;
        Mean = Core.Interop.toArray(model.Mean);
        Loadings = Core.Interop.toArray2D(model.W);
    }

    /// <summary>The F# core model (float64 TorchSharp tensors), for F# and advanced C# users.</summary>
    public Core.ProbabilisticPca.PpcaModel CoreModel => _model;

    /// <summary>The number of latent dimensions k.</summary>
    public int ComponentCount => Loadings.GetLength(1);

    /// <summary>σ², the mean of the discarded eigenvalues of the maximum-likelihood (1/n) covariance.</summary>
    public double NoiseVariance => _model.Sigma2;

    /// <summary>The mean μ of the training rows (length = features), rounded to float.</summary>
    public float[] Mean { get; }

    /// <summary>The loadings W, features × <see cref="ComponentCount"/>, rounded to float: the leading eigenvectors
    /// scaled by the square roots of their eigenvalues less σ².</summary>
    public float[,] Loadings { get; }

    /// <summary>The exact mean log p(x) per row of <paramref name="data"/> under N(μ, W Wᵀ + σ² I), in nats, computed
    /// in float64. Throws <see cref="ArgumentException"/> for a width other than the model's, an empty set, NaN or
    /// infinity.</summary>
    public double LogLikelihood(float[,] data)
    {
        using var x = Convert.ToTensor(data, nameof(data));
        return Core.ProbabilisticPca.meanLogLikelihood(_model, x);
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

    /// <summary>Saves the model to <paramref name="path"/> atomically, like the other models (a temporary file in the
    /// same folder, flushed to disk, then renamed over the path); <see cref="Pca.Load"/> reads it back. Throws
    /// <see cref="ArgumentException"/> for a null or empty path, before anything is written.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Core.PcaFile.save(path, _fit);
    }

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
