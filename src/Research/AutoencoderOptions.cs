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
    /// <summary>The nonlinearity between hidden layers (not used when <see cref="Linear"/>).</summary>
    public Activation Activation { get; init; } = Activation.ReLU;
    /// <summary><c>null</c>: PyTorch's default initialisation (uniform in ±1/√fan-in); else every weight and bias
    /// ~ N(0, InitStd²). Must be finite and positive when set.</summary>
    public double? InitStd { get; init; } = null;
    /// <summary>Set: a convolutional encoder and a transposed-convolutional decoder for images of this shape
    /// (<see cref="InputSize"/> must equal C·H·W; rows are images in C-H-W order). <see cref="HiddenSizes"/> are then
    /// the channel counts of the stride-2 convolutions (kernel 4, padding 1), input side first, each followed by the
    /// activation and then a linear layer to the code; the decoder mirrors them. For MNIST with HiddenSizes = [32, 64]:
    /// Conv(1→32) to 14×14, Conv(32→64) to 7×7, Linear(3136 → code), and back. A shape that does not fit InputSize
    /// or the layers is an <see cref="ArgumentException"/> from the constructor.</summary>
    public ImageShape? Convolutional { get; init; } = null;
    /// <summary>Seeds the initial weights.</summary>
    public int Seed { get; init; } = 0;
    /// <summary>"auto", "cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; init; } = "auto";
}
