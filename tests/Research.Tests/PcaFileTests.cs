namespace Research.Tests;

/// <summary>PcaModel.Save and Pca.Load.</summary>
public sealed class PcaFileTests
{
    [Fact]
    public void Save_then_Load_gives_an_equal_model_bit_for_bit()
    {
        var dir = Directory.CreateTempSubdirectory("research-pca-");
        try
        {
            var x = TestData.Uniform(11, 120, 9);
            var pca = Pca.Fit(x, components: 4);
            var path = Path.Combine(dir.FullName, "model.pca");
            pca.Save(path);
            pca.Save(path);   // replacing a file is fine
            var loaded = Pca.Load(path);
            Assert.Equal(pca.ComponentCount, loaded.ComponentCount);
            Assert.Equal(pca.Mean, loaded.Mean);
            Assert.Equal(pca.Components, loaded.Components);
            Assert.Equal(pca.ExplainedVariance, loaded.ExplainedVariance);
            Assert.Equal(pca.ExplainedVarianceRatio, loaded.ExplainedVarianceRatio);
            var test = TestData.Uniform(12, 30, 9);
            Assert.Equal(pca.Transform(test), loaded.Transform(test));   // float[,] equality: every element exactly
            Assert.Equal(pca.InverseTransform(pca.Transform(test)), loaded.InverseTransform(loaded.Transform(test)));
            Assert.Equal(pca.ReconstructionError(test), loaded.ReconstructionError(test));
            Assert.Equal(["model.pca"], Directory.GetFiles(dir.FullName).Select(Path.GetFileName));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Another_models_file_or_a_truncated_or_damaged_one_is_InvalidDataException()
    {
        var dir = Directory.CreateTempSubdirectory("research-pca-");
        try
        {
            var path = Path.Combine(dir.FullName, "model.pca");
            Pca.Fit(TestData.Uniform(13, 50, 6), components: 2).Save(path);
            var bytes = File.ReadAllBytes(path);
            var other = Path.Combine(dir.FullName, "other");
            File.WriteAllBytes(other, bytes[..(bytes.Length / 2)]);
            Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Pca.Load(other)).Message);
            var damaged = (byte[])bytes.Clone();
            damaged[bytes.Length / 2] ^= 1;
            File.WriteAllBytes(other, damaged);
            Assert.Contains("checksum", Assert.Throws<InvalidDataException>(() => Pca.Load(other)).Message);
            using (var ae = new Autoencoder(new AutoencoderOptions { InputSize = 6, LatentSize = 2, Device = "cpu" }))
                ae.Save(other);
            Assert.Contains("kind \"autoencoder\"", Assert.Throws<InvalidDataException>(() => Pca.Load(other)).Message);
            // And the other way round: a PCA file is not an autoencoder.
            Assert.Throws<InvalidDataException>(() => Autoencoder.Load(path, "cpu"));
            Assert.Throws<FileNotFoundException>(() => Pca.Load(Path.Combine(dir.FullName, "absent")));
            Assert.ThrowsAny<ArgumentException>(() => Pca.Load(""));
            Assert.ThrowsAny<ArgumentException>(() => Pca.Load(null!));
            var pca = Pca.Fit(TestData.Uniform(13, 50, 6), components: 2);
            Assert.ThrowsAny<ArgumentException>(() => pca.Save(" "));
            Assert.ThrowsAny<ArgumentException>(() => pca.Save(null!));
        }
        finally { dir.Delete(true); }
    }
}
