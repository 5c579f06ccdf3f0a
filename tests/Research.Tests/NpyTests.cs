namespace Research.Tests;

/// <summary>The .npy interchange against NumPy itself: files NumPy writes are read exactly, files we write are
/// what numpy.load expects (and byte-identical to what numpy.save writes).</summary>
[Collection(SubprocessCollection.Name)]
public sealed class NpyTests
{
    private const int Rows = 5, Columns = 7;

    /// <summary>The float64 values both sides compute the same way (one multiply, one subtract, IEEE), with the awkward
    /// values in row 0: NaN, ±∞, −0, a float32 subnormal, a near-maximal float32.</summary>
    private const string PythonBase = """
        import numpy as np
        rows, cols = 5, 7
        base = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols) * 0.37 - 3.0
        base[0, :6] = [np.nan, np.inf, -np.inf, -0.0, 1e-40, 3.0e38]
        bytes_ = (np.arange(rows * cols).reshape(rows, cols) * 7 % 256).astype(np.uint8)
        """;

    private static double Base(int i, int j) => i > 0 || j >= 6
        ? (i * Columns + j) * 0.37 - 3.0
        : new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, 1e-40, 3.0e38 }[j];

    private static float[,] Expected(Func<int, int, float> f)
    {
        var a = new float[Rows, Columns];
        for (int i = 0; i < Rows; i++)
            for (int j = 0; j < Columns; j++)
                a[i, j] = f(i, j);
        return a;
    }

    /// <summary>Equal bit for bit, except that any NaN equals any NaN (float32 NaN payloads differ by who rounds).</summary>
    private static void AssertSameValues(float[,] expected, float[,] actual, string what)
    {
        Assert.Equal(expected.GetLength(0), actual.GetLength(0));
        Assert.Equal(expected.GetLength(1), actual.GetLength(1));
        for (int i = 0; i < expected.GetLength(0); i++)
            for (int j = 0; j < expected.GetLength(1); j++)
                Assert.True(float.IsNaN(expected[i, j]) ? float.IsNaN(actual[i, j])
                        : BitConverter.SingleToInt32Bits(expected[i, j]) == BitConverter.SingleToInt32Bits(actual[i, j]),
                    $"{what}: [{i}, {j}] is {actual[i, j]:R}, expected {expected[i, j]:R}");
    }

    [Fact]
    public async Task Reads_what_NumPy_writes_exactly_and_names_what_it_refuses()
    {
        var dir = Directory.CreateTempSubdirectory("research-npy-");
        try
        {
            await Python.Run(PythonBase + """

                f4 = base.astype(np.float32)
                for name, a in [("f4_c", f4), ("f4_f", np.asfortranarray(f4)), ("f8_c", base), ("f8_f", np.asfortranarray(base)),
                                ("u1_c", bytes_), ("u1_f", np.asfortranarray(bytes_))]:
                    np.save(name + ".npy", a)
                    for version in [(2, 0), (3, 0)]:
                        with open("%s_v%d.npy" % (name, version[0]), "wb") as f:
                            np.lib.format.write_array(f, a, version=version)
                assert np.load("f4_f.npy").flags.f_contiguous and not np.load("f4_f.npy").flags.c_contiguous
                np.save("vector.npy", np.arange(5, dtype=np.float32))
                np.save("cube.npy", np.zeros((2, 3, 4), dtype=np.float32))
                np.save("int64.npy", np.arange(6, dtype=np.int64).reshape(2, 3))
                np.save("bigendian.npy", np.zeros((2, 2), dtype=">f4"))
                np.save("float16.npy", np.zeros((2, 2), dtype=np.float16))
                np.save("empty.npy", np.zeros((0, 4), dtype=np.float32))
                """, dir.FullName);

            var asFloat = Expected((i, j) => (float)Base(i, j));
            var asBytes = Expected((i, j) => (i * Columns + j) * 7 % 256);
            foreach (var (name, expected) in new[] { ("f4", asFloat), ("f8", asFloat), ("u1", asBytes) })
                foreach (var order in new[] { "c", "f" })
                    foreach (var suffix in new[] { "", "_v2", "_v3" })
                    {
                        var file = $"{name}_{order}{suffix}.npy";
                        AssertSameValues(expected, Npy.Read(Path.Combine(dir.FullName, file)), file);
                    }
            Assert.Equal(238f, Npy.Read(Path.Combine(dir.FullName, "u1_c.npy"))[4, 6]);   // byte 238 is 238, not scaled to [0, 1]

            var empty = Npy.Read(Path.Combine(dir.FullName, "empty.npy"));
            Assert.Equal((0, 4), (empty.GetLength(0), empty.GetLength(1)));
            foreach (var (file, expected) in new[]
                     {
                         ("vector.npy", "1-D (shape (5,))"), ("cube.npy", "3-D (shape (2, 3, 4))"), ("int64.npy", "'<i8'"),
                         ("bigendian.npy", "'>f4' (big-endian"), ("float16.npy", "'<f2'"),
                     })
            {
                var path = Path.Combine(dir.FullName, file);
                var e = Assert.Throws<InvalidDataException>(() => Npy.Read(path));
                Assert.Contains(expected, e.Message);
                Assert.Contains(path, e.Message);
            }
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public async Task NumPy_loads_what_we_write_with_the_shape_dtype_and_values_and_the_bytes_of_numpy_save()
    {
        var dir = Directory.CreateTempSubdirectory("research-npy-");
        try
        {
            Npy.Write(Path.Combine(dir.FullName, "ours.npy"), Expected((i, j) => (float)Base(i, j)));
            var finite = Expected((i, j) => (float)((i * Columns + j) * 0.37 - 3.0));
            Npy.Write(Path.Combine(dir.FullName, "finite.npy"), finite);
            Npy.Write(Path.Combine(dir.FullName, "empty.npy"), new float[0, 3]);
            var wide = new float[2, 100_000];
            wide[1, 99_999] = 1.5f;
            Npy.Write(Path.Combine(dir.FullName, "wide.npy"), wide);
            Npy.Write(Path.Combine(dir.FullName, "wide.npy"), wide);   // replacing a file is fine
            Assert.Equal(4, Directory.GetFiles(dir.FullName).Length);  // no temporary file left

            var output = await Python.Run(PythonBase + """

                import io
                with open("ours.npy", "rb") as f:
                    version = np.lib.format.read_magic(f)
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    assert version == (1, 0) and f.tell() % 64 == 0, (version, f.tell())
                assert shape == (rows, cols) and not fortran and dtype == np.dtype("<f4"), (shape, fortran, dtype)
                a = np.load("ours.npy")
                assert a.dtype == np.float32 and a.shape == (rows, cols)
                assert np.array_equal(a, base.astype(np.float32), equal_nan=True), a
                assert np.signbit(a[0, 3]) and a[0, 4] == np.float32(1e-40)
                for name in ["finite.npy", "empty.npy", "wide.npy"]:
                    ours = open(name, "rb").read()
                    theirs = io.BytesIO()
                    np.save(theirs, np.load(name))
                    assert ours == theirs.getvalue(), (name, ours[:128], theirs.getvalue()[:128])
                assert np.array_equal(np.load("finite.npy"), (np.arange(rows * cols, dtype=np.float64).reshape(rows, cols) * 0.37 - 3.0).astype(np.float32))
                assert np.load("empty.npy").shape == (0, 3)
                w = np.load("wide.npy")
                assert w.shape == (2, 100000) and w[1, 99999] == 1.5 and w.sum() == 1.5
                print("numpy agrees")
                """, dir.FullName);
            Assert.Contains("numpy agrees", output);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Bad_arguments_are_ArgumentException_before_any_work()
    {
        var dir = Directory.CreateTempSubdirectory("research-npy-");
        try
        {
            var path = Path.Combine(dir.FullName, "x.npy");
            Assert.ThrowsAny<ArgumentException>(() => Npy.Read(null!));
            Assert.ThrowsAny<ArgumentException>(() => Npy.Read(""));
            Assert.ThrowsAny<ArgumentException>(() => Npy.Write(null!, new float[1, 1]));
            Assert.ThrowsAny<ArgumentException>(() => Npy.Write(" ", new float[1, 1]));
            Assert.ThrowsAny<ArgumentException>(() => Npy.Write(path, null!));
            Assert.Empty(Directory.GetFiles(dir.FullName));
            Assert.Throws<FileNotFoundException>(() => Npy.Read(path));
            File.WriteAllText(path, "not numpy");
            Assert.Contains("bad magic", Assert.Throws<InvalidDataException>(() => Npy.Read(path)).Message);
        }
        finally { dir.Delete(true); }
    }
}
