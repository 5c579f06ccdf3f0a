using TorchSharp;
using static TorchSharp.torch;

namespace Research.Tests;

/// <summary>A VAE on research code's own TorchSharp modules: every member works, Save/Load checks names and shapes,
/// bad output shapes are refused up front, and the library's fast path (closed-form gradient) trains the built-in
/// MLPs exactly as autograd trains the same MLPs given as modules, through the same public Fit.</summary>
public sealed class OwnNetworksTests
{
    /// <summary>x ↦ head(x + relu(inner(x))) after a first projection: a residual MLP encoder.</summary>
    private sealed class ResidualEncoder : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> project, inner, head;

        public ResidualEncoder(int input, int hidden, int latent) : base(nameof(ResidualEncoder))
        {
            project = nn.Linear(input, hidden);
            inner = nn.Linear(hidden, hidden);
            head = nn.Linear(hidden, 2 * latent);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var h = nn.functional.relu(project.call(x));
            using var r = nn.functional.relu(inner.call(h));
            using var sum = h + r;
            return head.call(sum);
        }
    }

    private static nn.Module<Tensor, Tensor> Mlp(params int[] sizes)
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int i = 0; i + 1 < sizes.Length; i++)
        {
            layers.Add(($"linear{i}", nn.Linear(sizes[i], sizes[i + 1])));
            if (i + 2 < sizes.Length) layers.Add(($"relu{i}", nn.ReLU()));
        }
        return nn.Sequential(layers);
    }

    /// <summary>Binary rows near one of four random prototypes (5% of the pixels flipped): data a VAE can learn.</summary>
    private static float[,] Clustered(int seed, int n)
    {
        var rng = new Random(seed);
        var prototypes = TestData.Uniform(seed + 100, 4, 12, binary: true);
        var x = new float[n, 12];
        for (int i = 0; i < n; i++)
        {
            int k = rng.Next(4);
            for (int j = 0; j < 12; j++) x[i, j] = rng.NextDouble() < 0.05 ? 1f - prototypes[k, j] : prototypes[k, j];
        }
        return x;
    }

    /// <summary>The module with its weights drawn from its own seeded generator (uniform ±1/√fan_in, zero biases):
    /// TorchSharp's construction-time init uses the process-wide RNG, which tests running in parallel share.</summary>
    private static T Seeded<T>(T module, int seed) where T : nn.Module
    {
        using var g = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            if (p.dim() >= 2) p.uniform_(-1.0 / Math.Sqrt(p.shape[1]), 1.0 / Math.Sqrt(p.shape[1]), g);
            else p.zero_();
        }
        return module;
    }

    private static VaeOptions Options => new() { InputSize = 12, LatentSize = 2, Seed = 4, Device = "cpu" };

    [Fact]
    public void A_residual_encoder_trains_and_every_member_works_and_it_saves_and_loads_into_fresh_modules()
    {
        var dir = Directory.CreateTempSubdirectory("research-own-");
        try
        {
            var x = Clustered(2, 300);
            using var vae = new VariationalAutoencoder(Options, Seeded(new ResidualEncoder(12, 16, 2), 1), Seeded(Mlp(2, 16, 12), 2));
            double untrained = vae.ReconstructionError(x);
            var history = vae.Fit(x, new TrainingOptions { Epochs = 12, BatchSize = 50, LearningRate = 3e-3, Validation = x });
            Assert.True(history[^1].TrainLoss < history[0].TrainLoss - 1.0, $"the loss fell: {history[0].TrainLoss:F3} → {history[^1].TrainLoss:F3}");
            var (mean, logVariance) = vae.Encode(x);
            Assert.Equal((300, 2), (mean.GetLength(0), logVariance.GetLength(1)));
            Assert.Equal((4, 12), (vae.Sample(4).GetLength(0), vae.Decode(new float[4, 2]).GetLength(1)));
            double elbo = vae.Elbo(x, samples: 5, seed: 1);
            Assert.True(elbo <= vae.LogLikelihood(x, importanceSamples: 50, seed: 1) + 0.05, "ELBO ≤ the importance-weighted bound");
            Assert.InRange(vae.ReconstructionError(x), 0.0, untrained - 0.02);

            var path = Path.Combine(dir.FullName, "own.vae");
            vae.Save(path);
            using var loaded = VariationalAutoencoder.Load(path, new ResidualEncoder(12, 16, 2), Mlp(2, 16, 12), "cpu");
            Assert.Equal(elbo, loaded.Elbo(x, samples: 5, seed: 1));
            Assert.Equal(vae.Reconstruct(x), loaded.Reconstruct(x));

            var plain = Assert.Throws<InvalidDataException>(() => VariationalAutoencoder.Load(path, "cpu"));
            Assert.Contains("own encoder and decoder", plain.Message);
            var wider = new ResidualEncoder(12, 20, 2);
            var before = wider.parameters().Select(p => p.clone()).ToList();
            var mismatch = Assert.Throws<InvalidDataException>(() => VariationalAutoencoder.Load(path, wider, Mlp(2, 16, 12), "cpu"));
            Assert.Contains("shape", mismatch.Message);
            Assert.All(wider.parameters().Zip(before), pair => Assert.True(pair.First.Equals(pair.Second), "the modules are unchanged"));
            var renamed = Assert.Throws<InvalidDataException>(() => VariationalAutoencoder.Load(path, Mlp(12, 16, 4), Mlp(2, 16, 12), "cpu"));
            Assert.Contains("lacks the tensor", renamed.Message);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void A_module_with_the_wrong_output_width_is_an_ArgumentException_naming_both_shapes()
    {
        var e = Assert.Throws<ArgumentException>(() => new VariationalAutoencoder(Options, Mlp(12, 8, 3), Mlp(2, 8, 12)));
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[2, 4]", e.Message);
        var d = Assert.Throws<ArgumentException>(() => new VariationalAutoencoder(Options with { Likelihood = Likelihood.Gaussian }, Mlp(12, 8, 4), Mlp(2, 8, 12)));
        Assert.Contains("[2, 12]", d.Message);
        Assert.Contains("[2, 24]", d.Message);
        var failing = Assert.Throws<ArgumentException>(() => new VariationalAutoencoder(Options, Mlp(10, 8, 4), Mlp(2, 8, 12)));
        Assert.Contains("failed on an input of shape [2, 12]", failing.Message);
    }

    [Fact]
    public void The_fast_path_trains_the_builtin_mlp_as_autograd_trains_the_same_mlp_given_as_modules()
    {
        var x = TestData.Uniform(5, 256, 12, binary: true);
        var training = new TrainingOptions { Epochs = 3, BatchSize = 32, Seed = 11 };
        foreach (var likelihood in new[] { Likelihood.Bernoulli, Likelihood.Gaussian })
        {
            var options = Options with { HiddenSizes = [16], Likelihood = likelihood };
            using var builtIn = new VariationalAutoencoder(options);
            int outputs = likelihood == Likelihood.Bernoulli ? 12 : 24;
            var encoder = Mlp(12, 16, 4);
            var decoder = Mlp(2, 16, outputs);
            using (no_grad())
            {
                var mine = encoder.named_parameters().Concat(decoder.named_parameters()).Select(p => p.parameter).ToList();
                var theirs = builtIn.CoreModel.Networks.Parameters.ToList();
                Assert.Equal(theirs.Count, mine.Count);
                foreach (var (m, t) in mine.Zip(theirs)) m.copy_(t);
            }
            using var own = new VariationalAutoencoder(options, encoder, decoder);
            Assert.Equal(builtIn.Elbo(x, 3, 2), own.Elbo(x, 3, 2), 5);   // the same network before training
            var fast = builtIn.Fit(x, training).Select(r => r.TrainLoss).ToArray();
            var autograd = own.Fit(x, training).Select(r => r.TrainLoss).ToArray();
            for (int e = 0; e < fast.Length; e++) Assert.Equal(fast[e], autograd[e], 4);
            double largest = builtIn.CoreModel.Networks.Parameters.Zip(own.CoreModel.Networks.Parameters)
                .Max(p => (p.First - p.Second).abs().max().item<float>());
            Assert.True(largest < 1e-4, $"{likelihood}: weights after training differ by {largest:E2}");
        }
    }
}
