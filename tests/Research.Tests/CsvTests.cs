namespace Research.Tests;

/// <summary>Csv.Read through the facade (the parsing rules are tested in the core's CsvTests).</summary>
public sealed class CsvTests
{
    [Fact]
    public void Reads_a_table_with_a_header_and_names_the_bad_cell()
    {
        var dir = Directory.CreateTempSubdirectory("research-csv-");
        try
        {
            var path = Path.Combine(dir.FullName, "t.csv");
            File.WriteAllText(path, "height,weight\n1.5,60\n1.75,72.5\n");
            Assert.Equal(new float[,] { { 1.5f, 60f }, { 1.75f, 72.5f } }, Csv.Read(path, header: true));
            File.WriteAllText(path, "1;2\n3;4\n");
            Assert.Equal(new float[,] { { 1f, 2f }, { 3f, 4f } }, Csv.Read(path, separator: ';'));
            File.WriteAllText(path, "1,2\n3,four\n");
            var e = Assert.Throws<InvalidDataException>(() => Csv.Read(path));
            Assert.Contains("line 2 (data row 2), column 2: 'four' is not a number", e.Message);
            File.WriteAllText(path, "1,2\n3\n");
            Assert.Contains("line 2 has 1 cell(s)", Assert.Throws<InvalidDataException>(() => Csv.Read(path)).Message);
            File.WriteAllText(path, "");
            Assert.Contains("no data rows", Assert.Throws<InvalidDataException>(() => Csv.Read(path)).Message);
            Assert.ThrowsAny<ArgumentException>(() => Csv.Read(""));
            Assert.ThrowsAny<ArgumentException>(() => Csv.Read(path, separator: '"'));
            Assert.Throws<FileNotFoundException>(() => Csv.Read(Path.Combine(dir.FullName, "absent.csv")));
        }
        finally { dir.Delete(true); }
    }
}
