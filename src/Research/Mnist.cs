using Core = Research.Core;

namespace Research;

/// <summary>The two halves of MNIST.</summary>
public enum MnistSplit
{
    /// <summary>The 60,000 training images.</summary>
    Train,
    /// <summary>The 10,000 test images.</summary>
    Test,
}

/// <summary>Reads MNIST from its four original IDX files.</summary>
public static class Mnist
{
    /// <summary>Reads one split from <paramref name="directory"/> (raw or .gz IDX files); pixels are scaled to [0, 1],
    /// one 784-pixel image per row. Throws <see cref="InvalidDataException"/> for a damaged file and
    /// <see cref="FileNotFoundException"/> when the files are missing (fetch them with <c>dotnet fsi build.fsx data</c>).</summary>
    public static (float[,] Images, int[] Labels) Load(string directory, MnistSplit split)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var (images, labels) = Core.Mnist.loadArrays(directory, split == MnistSplit.Train ? Core.Mnist.Split.Train : Core.Mnist.Split.Test);
        return (images, labels);
    }

    /// <summary>A fixed binarisation of <paramref name="images"/> (values in [0, 1]): each pixel becomes 1 with its value
    /// as the probability, drawn from a generator seeded with <paramref name="seed"/>, so the same seed gives the same
    /// bits. The binarised-MNIST protocol binarises the test set once like this and keeps it; training resamples every
    /// minibatch instead (<see cref="TrainingOptions.DynamicBinarization"/>). Values outside [0, 1] are an
    /// <see cref="ArgumentException"/> naming the first one.</summary>
    public static float[,] Binarize(float[,] images, int seed)
    {
        using var x = Convert.ToTensor(images, nameof(images));
        return Convert.ToArray(Core.Mnist.binarize(x, seed));
    }
}
