// PCA against a variational autoencoder on MNIST, with a budget small enough for a laptop CPU.
//
//   dotnet run --project examples/CSharpVae                         # 10,000 images, 5 epochs (a minute or two)
//   dotnet run --project examples/CSharpVae -- --quick              # 2,000 images, 1 epoch (seconds)
//   dotnet run --project examples/CSharpVae -- --train 60000 --epochs 20 --latent 10 --data /path/to/mnist
//
// Both models compress each 784-pixel image to the same number of latent dimensions; the table compares
// how well they reconstruct the 10,000 test images, and the VAE's evidence lower bound.
using System.Diagnostics;
using System.Runtime.InteropServices;
using Research;

int train = 10_000, epochs = 5, latent = 20;
string? data = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--quick": train = 2_000; epochs = 1; break;
        case "--train": train = int.Parse(args[++i]); break;
        case "--epochs": epochs = int.Parse(args[++i]); break;
        case "--latent": latent = int.Parse(args[++i]); break;
        case "--data": data = args[++i]; break;
        default:
            Console.Error.WriteLine($"unknown argument '{args[i]}'; expected --quick, --train N, --epochs N, --latent N, --data DIR");
            return 2;
    }
}

data ??= FindMnist();
if (data is null)
{
    Console.Error.WriteLine("MNIST not found: fetch it with `dotnet fsi build.fsx data` (it goes to data/mnist) or pass --data DIR.");
    return 1;
}

var clock = Stopwatch.StartNew();
var (trainImages, _) = Mnist.Load(data, MnistSplit.Train);
var (testImages, _) = Mnist.Load(data, MnistSplit.Test);
train = Math.Min(train, trainImages.GetLength(0));
// The first `train` rows without a copy: a float[,] is row-major, so its first n rows are one span.
ReadOnlySpan<float> firstRows = MemoryMarshal.CreateReadOnlySpan(ref trainImages[0, 0], train * Mnist784);
Console.WriteLine($"PCA vs VAE on MNIST: {train} training images, {latent} latent dimensions, {epochs} epoch(s) of Adam");

var pca = Pca.Fit(firstRows, rows: train, components: latent);
double pcaMse = pca.ReconstructionError(testImages);
Console.WriteLine($"  PCA fitted in {clock.Elapsed.TotalSeconds:F1} s; it explains {pca.ExplainedVarianceRatio.Sum():P1} of the pixel variance");

using var vae = new VariationalAutoencoder(new VaeOptions { InputSize = Mnist784, LatentSize = latent, HiddenSizes = [400], Device = "cpu" });
var history = vae.Fit(firstRows, rows: train, new TrainingOptions
{
    Epochs = epochs,
    Progress = new Progress<EpochReport>(r => Console.WriteLine($"  VAE epoch {r.Epoch}: −ELBO {r.TrainLoss:F1} nats per image ({r.Elapsed.TotalSeconds:F1} s)")),
});
double vaeMse = MeanSquaredError(vae.Reconstruct(testImages), testImages);
double elbo = vae.Elbo(testImages);

Console.WriteLine();
Console.WriteLine($"{"model",-18} {"test MSE per pixel",18} {"test ELBO (nats)",17}");
Console.WriteLine($"{$"PCA, {latent} comps",-18} {pcaMse,18:F5} {"–",17}");
Console.WriteLine($"{$"VAE, N_z = {latent}",-18} {vaeMse,18:F5} {elbo,17:F1}");
Console.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s ({history.Count} VAE epochs)");
return 0;

static double MeanSquaredError(float[,] a, float[,] b)
{
    double sum = 0;
    for (int i = 0; i < a.GetLength(0); i++)
        for (int j = 0; j < a.GetLength(1); j++)
            sum += (a[i, j] - b[i, j]) * (double)(a[i, j] - b[i, j]);
    return sum / a.Length;
}

// data/mnist in the current folder or any folder above it (the repository's layout).
static string? FindMnist()
{
    for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
    {
        var candidate = Path.Combine(dir.FullName, "data", "mnist");
        if (File.Exists(Path.Combine(candidate, "t10k-images-idx3-ubyte")) || File.Exists(Path.Combine(candidate, "t10k-images-idx3-ubyte.gz")))
            return candidate;
    }
    return null;
}

partial class Program
{
    private const int Mnist784 = 28 * 28;
}
