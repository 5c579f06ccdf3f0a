using Xunit.Abstractions;

namespace Research.Tests;

/// <summary>Debian's PyTorch (python3-torch, run as /usr/bin/python3) and this library read each other's state_dict
/// files: a model exported here loads into the module of docs/pytorch.md and decodes the same latent vectors to the
/// same outputs, a module saved by PyTorch imports here and decodes the same, and files that do not fit are refused
/// with an <see cref="InvalidDataException"/> that names what is wrong. The PyTorch modules are the first
/// <c>python</c> block of docs/pytorch.md, so the documentation is what is tested.</summary>
[Collection(SubprocessCollection.Name)]
public sealed class PyTorchTests(ITestOutputHelper log) : IDisposable
{
    /// <summary>float32 on both sides, the same operations in the same order: outputs agree far closer than this.</summary>
    private const float Tolerance = 1e-5f;

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("research-pytorch-");

    public void Dispose() => _work.Delete(true);

    private string At(string name) => Path.Combine(_work.FullName, name);

    /// <summary>Runs the PyTorch modules of docs/pytorch.md followed by <paramref name="driver"/> in the scratch
    /// folder with Debian's interpreter; fails with its output unless it exits with 0.</summary>
    private async Task<string> Python(string driver)
    {
        const string interpreter = "/usr/bin/python3";
        Assert.True(File.Exists(interpreter), $"{interpreter} is missing: these tests need Debian's python3-torch and python3-numpy (.ci/run installs them)");
        var script = At("driver.py");
        File.WriteAllText(script, DocsModules + "\n\nimport numpy as np\n\n" + driver);
        var (code, output) = await Subprocess.Run(interpreter, [script], _work.FullName, TimeSpan.FromMinutes(2),
            new Dictionary<string, string?> { ["PYTHONNOUSERSITE"] = "1", ["OMP_NUM_THREADS"] = "1" });
        log.WriteLine(output);
        Assert.True(code == 0, $"python exited with {code}:\n{output}");
        return output;
    }

    /// <summary>The first python block of docs/pytorch.md: the ResearchVae and ResearchAutoencoder modules.</summary>
    private static string DocsModules =>
        string.Join("\n", DocsTests.Blocks(Path.Combine("docs", "pytorch.md")).First(b => b.Language == "python").Code);

    /// <summary>A float[,] as raw little-endian float32, row-major (numpy: np.fromfile(path, "&lt;f4")).</summary>
    private void WriteFloats(string name, float[,] a)
    {
        var bytes = new byte[a.Length * sizeof(float)];
        Buffer.BlockCopy(a, 0, bytes, 0, bytes.Length);
        File.WriteAllBytes(At(name), bytes);
    }

    private float[,] ReadFloats(string name, int columns)
    {
        var bytes = File.ReadAllBytes(At(name));
        Assert.True(bytes.Length % (sizeof(float) * columns) == 0, $"{name}: {bytes.Length} bytes are not rows of {columns} floats");
        var a = new float[bytes.Length / sizeof(float) / columns, columns];
        Buffer.BlockCopy(bytes, 0, a, 0, bytes.Length);
        return a;
    }

    private static void AssertClose(float[,] expected, float[,] actual, string what)
    {
        Assert.Equal(expected.GetLength(0), actual.GetLength(0));
        Assert.Equal(expected.GetLength(1), actual.GetLength(1));
        float worst = 0f;
        for (int i = 0; i < expected.GetLength(0); i++)
            for (int j = 0; j < expected.GetLength(1); j++)
                worst = Math.Max(worst, Math.Abs(expected[i, j] - actual[i, j]));
        Assert.True(worst <= Tolerance, $"{what}: the largest difference is {worst}, above {Tolerance}");
    }

    /// <summary>Standard normal rows (Box–Muller), from a seed: latent vectors spread like the prior's.</summary>
    private static float[,] Normal(int seed, int n, int p)
    {
        var rng = new Random(seed);
        var z = new float[n, p];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++)
                z[i, j] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return z;
    }

    private static string Py(Likelihood l) => l == Likelihood.Bernoulli ? "bernoulli" : "gaussian";

    [Theory]
    [InlineData(Likelihood.Bernoulli)]
    [InlineData(Likelihood.Gaussian)]
    public async Task A_trained_vae_exported_here_decodes_the_same_in_pytorch(Likelihood likelihood)
    {
        var options = new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5, 4], Likelihood = likelihood, Seed = 3, Device = "cpu" };
        using var vae = new VariationalAutoencoder(options);
        var x = TestData.Uniform(21, 64, 6, binary: likelihood == Likelihood.Bernoulli);
        vae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRate = 1e-2, Seed = 1 });
        var z = Normal(22, 10, 2);
        vae.ExportPyTorch(At("vae.pt"));
        WriteFloats("z.f32", z);
        WriteFloats("x.f32", x);

        await Python($"""
            state = torch.load("vae.pt", weights_only=True)
            assert all(t.dtype == torch.float32 for t in state.values()), "float32 tensors"
            model = ResearchVae(6, 2, (5, 4), likelihood="{Py(likelihood)}")
            model.load_state_dict(state)   # strict: a missing or unexpected name, or another shape, raises
            z = torch.from_numpy(np.fromfile("z.f32", "<f4").reshape(-1, 2))
            x = torch.from_numpy(np.fromfile("x.f32", "<f4").reshape(-1, 6))
            with torch.no_grad():
                model.decode(z).numpy().tofile("decoded.f32")
                mean, log_variance = model.encode(x)
                mean.numpy().tofile("mean.f32")
                log_variance.numpy().tofile("logvar.f32")
            print(list(state))
            """);

        AssertClose(vae.Decode(z), ReadFloats("decoded.f32", 6), "decoded z");
        var (mean, logVariance) = vae.Encode(x);
        AssertClose(mean, ReadFloats("mean.f32", 2), "posterior means");
        AssertClose(logVariance, ReadFloats("logvar.f32", 2), "posterior log-variances");
    }

    [Theory]
    [InlineData("float32", Likelihood.Bernoulli, 2)]
    [InlineData("float64", Likelihood.Gaussian, 2)]
    [InlineData("float32", Likelihood.Gaussian, 4)]
    public async Task A_vae_saved_by_pytorch_imports_here_and_decodes_the_same(string dtype, Likelihood likelihood, int protocol)
    {
        var z = Normal(23, 10, 3);
        WriteFloats("z.f32", z);
        await Python($"""
            import collections
            torch.manual_seed(5)
            model = ResearchVae(7, 3, (6,), likelihood="{Py(likelihood)}").to(torch.{dtype})
            state = model.state_dict()
            torch.save(state, "from-pytorch.pt", pickle_protocol={protocol})
            z = torch.from_numpy(np.fromfile("z.f32", "<f4").reshape(-1, 3)).to(torch.{dtype})
            with torch.no_grad():
                model.decode(z).float().numpy().tofile("decoded.f32")
            # The same tensors as views into one storage, at offsets, the weights transposed (not contiguous).
            parts, specs, at = [], [], 0
            for name, t in state.items():
                source = t.t().contiguous() if t.dim() == 2 else t
                parts.append(source.reshape(-1))
                specs.append((name, at, source.shape, t.dim() == 2))
                at += t.numel()
            flat = torch.cat(parts)
            views = collections.OrderedDict()
            for name, at, shape, transposed in specs:
                v = flat[at:at + shape.numel()].view(shape)
                views[name] = v.t() if transposed else v
                assert torch.equal(views[name], state[name])
            torch.save(views, "views.pt", pickle_protocol={protocol})
            import zipfile
            assert sum("/data/" in n for n in zipfile.ZipFile("views.pt").namelist()) == 1, "one shared storage"
            """);

        var options = new VaeOptions { InputSize = 7, LatentSize = 3, HiddenSizes = [6], Likelihood = likelihood, Device = "cpu" };
        using var vae = VariationalAutoencoder.ImportPyTorch(At("from-pytorch.pt"), options);
        Assert.Equal(options.HiddenSizes, vae.Options.HiddenSizes);
        Assert.Equal(likelihood, vae.Options.Likelihood);
        var expected = ReadFloats("decoded.f32", 7);
        AssertClose(expected, vae.Decode(z), "decoded z");
        using var fromViews = VariationalAutoencoder.ImportPyTorch(At("views.pt"), options);
        Assert.Equal(vae.Decode(z), fromViews.Decode(z));
        // The weights came from the file: a model with its own initialisation decodes differently.
        using var fresh = new VariationalAutoencoder(options);
        Assert.NotEqual(expected, fresh.Decode(z));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_trained_autoencoder_exported_here_gives_the_same_codes_and_decodings_in_pytorch(bool linear)
    {
        var options = new AutoencoderOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5, 3], Linear = linear, Seed = 2, Device = "cpu" };
        using var ae = new Autoencoder(options);
        var x = TestData.Uniform(24, 64, 6);
        ae.Fit(x, new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRate = 1e-2, Seed = 1 });
        var z = Normal(25, 10, 2);
        ae.ExportPyTorch(At("ae.pt"));
        WriteFloats("z.f32", z);
        WriteFloats("x.f32", x);

        await Python($"""
            model = ResearchAutoencoder(6, 2, (5, 3), linear={(linear ? "True" : "False")})
            model.load_state_dict(torch.load("ae.pt", weights_only=True))
            z = torch.from_numpy(np.fromfile("z.f32", "<f4").reshape(-1, 2))
            x = torch.from_numpy(np.fromfile("x.f32", "<f4").reshape(-1, 6))
            with torch.no_grad():
                model.decode(z).numpy().tofile("decoded.f32")
                model.encode(x).numpy().tofile("codes.f32")
            # the round trip: a module saved by PyTorch, imported below
            torch.manual_seed(6)
            torch.save(ResearchAutoencoder(6, 2, (5, 3), linear={(linear ? "True" : "False")}).state_dict(), "from-pytorch.pt")
            """);

        AssertClose(ae.Decode(z), ReadFloats("decoded.f32", 6), "decoded codes");
        AssertClose(ae.Encode(x), ReadFloats("codes.f32", 2), "codes");
        using var imported = Autoencoder.ImportPyTorch(At("from-pytorch.pt"), options);
        Assert.NotEqual(ae.Decode(z), imported.Decode(z));
        // The other layout (activations or none) puts the layers at other indices: refused by name.
        var other = Assert.Throws<InvalidDataException>(() => Autoencoder.ImportPyTorch(At("from-pytorch.pt"), options with { Linear = !linear }));
        Assert.Contains(linear ? "holds 'encoder.1.weight'" : "lacks the parameter 'encoder.1.weight'", other.Message);
    }

    [Fact]
    public async Task The_python_blocks_of_the_docs_run_against_a_model_exported_here()
    {
        // The docs' C# block exports an untrained 784-20 VAE as vae.pt; the python blocks load it, then save
        // from-pytorch.pt, which the docs' (compile-only) C# block imports.
        var options = new VaeOptions { InputSize = 784, LatentSize = 20, Device = "cpu" };
        using (var vae = new VariationalAutoencoder(options)) vae.ExportPyTorch(At("vae.pt"));
        var blocks = DocsTests.Blocks(Path.Combine("docs", "pytorch.md")).Where(b => b.Language == "python").Skip(1);
        await Python(string.Join("\n", blocks.Select(b => string.Join("\n", b.Code))) + "\nassert images.shape == (16, 784)\n");
        using var imported = VariationalAutoencoder.ImportPyTorch(At("from-pytorch.pt"), options);
        Assert.Equal(784, imported.Decode(new float[16, 20]).GetLength(1));
    }

    [Fact]
    public async Task Files_that_do_not_fit_are_refused_with_a_message_that_names_the_problem()
    {
        await Python("""
            torch.manual_seed(0)
            model = ResearchVae(6, 2, (5,))
            state = model.state_dict()
            torch.save(state, "good.pt")
            missing = state.copy(); del missing["decoder.2.bias"]; torch.save(missing, "missing.pt")
            extra = state.copy(); extra["encoder.4.weight"] = torch.zeros(3, 5); torch.save(extra, "extra.pt")
            torch.save(ResearchVae(7, 2, (5,)).state_dict(), "shape.pt")
            renamed = {k.replace("encoder.", "enc."): v for k, v in state.items()}; torch.save(renamed, "renamed.pt")
            torch.save(state, "legacy.pt", _use_new_zipfile_serialization=False)
            torch.save(torch.zeros(3), "tensor.pt")
            torch.save(model, "module.pt")
            torch.save(model.half().state_dict(), "half.pt")
            """);
        var options = new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5], Device = "cpu" };
        using (VariationalAutoencoder.ImportPyTorch(At("good.pt"), options)) { }   // the files below differ from this one only as named

        InvalidDataException Refused(string file)
        {
            var e = Assert.Throws<InvalidDataException>(() => VariationalAutoencoder.ImportPyTorch(At(file), options));
            log.WriteLine($"{file}: {e.Message}");
            return e;
        }
        Assert.Contains("lacks the parameter 'decoder.2.bias' (shape [6])", Refused("missing.pt").Message);
        Assert.Contains("holds 'encoder.4.weight' (shape [3, 5])", Refused("extra.pt").Message);
        Assert.Contains("'encoder.0.weight' has shape [5, 7] in the file but [5, 6]", Refused("shape.pt").Message);
        var renamed = Refused("renamed.pt").Message;
        Assert.Contains("lacks the parameter 'encoder.0.weight'", renamed);
        Assert.Contains("holds 'enc.0.weight'", renamed);
        Assert.Contains("HalfStorage", Refused("half.pt").Message);
        Assert.Contains("not a state_dict", Refused("tensor.pt").Message);
        Assert.Contains("__main__.ResearchVae", Refused("module.pt").Message);
        Assert.Contains("not a zip archive", Refused("legacy.pt").Message);

        // Garbage, an empty file, and a good file cut short anywhere or with its pickle overwritten.
        File.WriteAllBytes(At("garbage.pt"), Enumerable.Range(0, 4096).Select(i => (byte)(i * 131 % 251)).ToArray());
        Assert.Contains("garbage.pt", Refused("garbage.pt").Message);
        File.WriteAllBytes(At("empty.pt"), []);
        Refused("empty.pt");
        var good = File.ReadAllBytes(At("good.pt"));
        foreach (var length in new[] { 10, good.Length / 3, good.Length / 2, good.Length - 30, good.Length - 1 })
        {
            File.WriteAllBytes(At("cut.pt"), good[..length]);
            Refused("cut.pt");
        }
        var name = good.AsSpan().IndexOf("data.pkl"u8);   // in the first local header; the pickle (PROTO 2) follows
        var pickle = name + good.AsSpan(name).IndexOf(new byte[] { 0x80, 0x02 });
        var damaged = (byte[])good.Clone();
        for (int i = pickle; i < pickle + 40; i++) damaged[i] = 0x07;
        File.WriteAllBytes(At("damaged.pt"), damaged);
        Assert.Contains("data.pkl", Refused("damaged.pt").Message);
        // One flipped bit in a tensor's data fails its checksum.
        var flipped = (byte[])good.Clone();
        flipped[DataOffset(good, "/data/7")] ^= 0x01;
        File.WriteAllBytes(At("flipped.pt"), flipped);
        Assert.Contains("CRC-32", Refused("flipped.pt").Message);

        Assert.Throws<FileNotFoundException>(() => VariationalAutoencoder.ImportPyTorch(At("absent.pt"), options));
        // Bad options are the caller's error, found before the file is opened.
        Assert.ThrowsAny<ArgumentException>(() => VariationalAutoencoder.ImportPyTorch(At("absent.pt"), options with { LatentSize = 0 }));
    }

    /// <summary>Where the data of the zip entry whose name ends in <paramref name="suffix"/> starts: after its local
    /// header (30 bytes, then the name and the extra field, whose lengths are at offsets 26 and 28).</summary>
    private static int DataOffset(byte[] zip, string suffix)
    {
        var name = zip.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(suffix));   // local headers precede the central directory
        var header = zip.AsSpan(0, name).LastIndexOf("PK\u0003\u0004"u8);
        Assert.True(name > 0 && header >= 0, $"no entry {suffix}");
        return header + 30 + BitConverter.ToUInt16(zip, header + 26) + BitConverter.ToUInt16(zip, header + 28);
    }

    [Fact]
    public void Export_then_import_gives_the_same_model_and_replaces_the_file_atomically()
    {
        var options = new VaeOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [5], Seed = 9, Device = "cpu" };
        using var vae = new VariationalAutoencoder(options);
        var z = Normal(26, 5, 2);
        File.WriteAllText(At("vae.pt"), "an older file");
        vae.ExportPyTorch(At("vae.pt"));
        Assert.Equal(["vae.pt"], _work.GetFiles().Select(f => f.Name));   // no temporary file left behind
        using var back = VariationalAutoencoder.ImportPyTorch(At("vae.pt"), options with { Seed = 1 });
        Assert.Equal(vae.Decode(z), back.Decode(z));

        var aeOptions = new AutoencoderOptions { InputSize = 6, LatentSize = 2, HiddenSizes = [4], Device = "cpu" };
        using var ae = new Autoencoder(aeOptions);
        ae.ExportPyTorch(At("ae.pt"));
        using var aeBack = Autoencoder.ImportPyTorch(At("ae.pt"), aeOptions with { Seed = 5 });
        Assert.Equal(ae.Decode(z), aeBack.Decode(z));

        Assert.Throws<DirectoryNotFoundException>(() => vae.ExportPyTorch(At(Path.Combine("no-such-folder", "vae.pt"))));
        vae.Dispose();
        Assert.Throws<ObjectDisposedException>(() => vae.ExportPyTorch(At("disposed.pt")));
        Assert.False(File.Exists(At("disposed.pt")));
    }
}
