using Core = Research.Core;

namespace Research;

/// <summary>NumPy's <c>.npy</c> files, for exchanging data sets and results with Python.</summary>
public static class Npy
{
    /// <summary>Reads a 2-D <c>.npy</c> array, one example per row: float32 (<c>&lt;f4</c>), float64 (<c>&lt;f8</c>,
    /// rounded to float) or uint8 (<c>|u1</c>, read as the numbers 0–255, not scaled to [0, 1]), in C or Fortran
    /// order, format version 1.0, 2.0 or 3.0. Throws <see cref="ArgumentException"/> for a null or empty path,
    /// <see cref="FileNotFoundException"/> for a missing file and <see cref="InvalidDataException"/>, naming the
    /// file and what was found, for anything else: a 1-D or 3-D array, another dtype (<c>&lt;i8</c>, big-endian
    /// <c>&gt;f4</c>, …), a bad magic number or header, a truncated file.</summary>
    /// <example><code>
    /// // Python: numpy.save("codes.npy", codes.astype(numpy.float32))
    /// float[,] codes = Npy.Read("codes.npy");
    /// </code></example>
    public static float[,] Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return Core.Npy.readArray(path);
    }

    /// <summary>Writes <paramref name="data"/> as a float32 C-order <c>.npy</c> file (format 1.0, data aligned to
    /// 64 bytes, exactly as <c>numpy.save</c> writes it) that <c>numpy.load</c> reads back with the same shape and
    /// values. The file is written atomically: to a temporary file in the same folder, flushed to disk, then renamed
    /// over <paramref name="path"/>, so a failure leaves any previous file whole. Throws
    /// <see cref="ArgumentException"/> for a null array or a null or empty path, before anything is written.</summary>
    public static void Write(string path, float[,] data)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(data);
        Core.Npy.writeArray(path, data);
    }
}
