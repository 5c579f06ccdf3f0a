namespace Research;

/// <summary>The architecture of an <see cref="Autoencoder"/>.</summary>
public sealed record AutoencoderOptions
{
    /// <summary>Features per example (784 for MNIST).</summary>
    public required int InputSize { get; init; }
    /// <summary>Size of the code; at most <see cref="InputSize"/>.</summary>
    public required int LatentSize { get; init; }
    /// <summary>Encoder hidden layer sizes, input side first; the decoder mirrors them. Empty by default.</summary>
    public int[] HiddenSizes { get; init; } = [];
    /// <summary>No nonlinearity at all (and no output sigmoid): the model whose optimum spans the PCA subspace.</summary>
    public bool Linear { get; init; } = false;
    /// <summary>Seeds the initial weights.</summary>
    public int Seed { get; init; } = 0;
    /// <summary>"auto", "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; init; } = "auto";
}
