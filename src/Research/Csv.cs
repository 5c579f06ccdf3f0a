using Core = Research.Core;

namespace Research;

/// <summary>Numeric tables in delimited text (CSV and the like).</summary>
public static class Csv
{
    /// <summary>Reads a table of numbers, one example per non-blank line and one number per cell, as a
    /// <c>float[,]</c>. Numbers are read in the invariant culture (a <c>.</c> decimal point, no thousands
    /// separators), correctly rounded to float; <c>NaN</c>, <c>Infinity</c>, <c>inf</c> and <c>-inf</c> count as
    /// numbers. Spaces and tabs around a cell are ignored, a cell may be quoted (<c>"1.5"</c>) but may not span
    /// lines, and blank lines are skipped. With <paramref name="header"/> the first line is skipped after its cells
    /// are counted. Throws <see cref="ArgumentException"/> for a null or empty path or a quote or line break as
    /// <paramref name="separator"/>, <see cref="FileNotFoundException"/> for a missing file and
    /// <see cref="InvalidDataException"/>, naming the file, for a ragged row (its line and both cell counts), a cell
    /// that is not a number (its line, data row and column) or a file without data rows.</summary>
    /// <example><code>
    /// float[,] table = Csv.Read("measurements.csv", header: true);
    /// float[,] tsv = Csv.Read("values.tsv", separator: '\t');
    /// </code></example>
    public static float[,] Read(string path, bool header = false, char separator = ',')
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return Core.Csv.readArray(path, header, separator);
    }
}
