namespace Research.Tests;

/// <summary>Pca.FitProbabilistic against scikit-learn's PCA, whose score is the probabilistic PCA log-likelihood.</summary>
[Collection(SubprocessCollection.Name)]
public sealed class ProbabilisticPcaTests
{
    /// <summary>n rows of rank-3 structure plus isotropic noise in 10 dimensions, from a seed.</summary>
    private static float[,] Data(int n)
    {
        var rng = new Random(21);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var w = new double[3, 10];
        for (int a = 0; a < 3; a++)
            for (int j = 0; j < 10; j++)
                w[a, j] = Normal() * (3 - a);
        var x = new float[n, 10];
        for (int i = 0; i < n; i++)
        {
            var z = new[] { Normal(), Normal(), Normal() };
            for (int j = 0; j < 10; j++)
                x[i, j] = (float)(z[0] * w[0, j] + z[1] * w[1, j] + z[2] * w[2, j] + 0.5 * Normal() + j);
        }
        return x;
    }

    [Fact]
    public async Task LogLikelihood_and_NoiseVariance_agree_with_scikit_learn()
    {
        const int n = 300, p = 10, k = 3;
        var dir = Directory.CreateTempSubdirectory("research-ppca-");
        try
        {
            var x = Data(n);
            Npy.Write(Path.Combine(dir.FullName, "x.npy"), x);
            var output = await Python.Run($"""
                import numpy as np
                from sklearn.decomposition import PCA
                X = np.load("x.npy").astype(np.float64)
                pca = PCA(n_components={k}, svd_solver="full").fit(X)
                print(repr(pca.score(X)))
                print(repr(pca.noise_variance_))
                """, dir.FullName);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            double sklearnScore = Python.ParseDouble(lines[0]), sklearnNoise = Python.ParseDouble(lines[1]);

            var ppca = Pca.FitProbabilistic(x, components: k);
            Assert.Equal(k, ppca.ComponentCount);
            Assert.Equal((p, k), (ppca.Loadings.GetLength(0), ppca.Loadings.GetLength(1)));
            // scikit-learn's covariance divides by n − 1 where Tipping & Bishop's maximum likelihood (ours) divides by
            // n: its model is ours with the covariance scaled by a = n / (n − 1), so σ²_sk = a σ², and on the training
            // data (where tr(C⁻¹ S) = P at the optimum) score_sk = ours − (P/2)(ln a + 1/a − 1), exactly.
            double a = n / (n - 1.0);
            Assert.Equal(sklearnNoise, ppca.NoiseVariance * a, 1e-9 * sklearnNoise);
            double ours = ppca.LogLikelihood(x);
            double expected = sklearnScore + p / 2.0 * (Math.Log(a) + 1 / a - 1);
            Assert.True(Math.Abs(ours - expected) < 1e-9 * Math.Abs(expected),
                $"ours {ours:R}, scikit-learn {sklearnScore:R} + the n/(n − 1) correction = {expected:R}");
            Assert.True(ours > sklearnScore, "the maximum-likelihood fit scores its training data higher");
            Assert.ThrowsAny<ArgumentException>(() => ppca.LogLikelihood(new float[2, p + 1]));
            Assert.ThrowsAny<ArgumentException>(() => Pca.FitProbabilistic(x, components: p));
        }
        finally { dir.Delete(true); }
    }
}
