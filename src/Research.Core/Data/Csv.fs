/// Numeric tables in delimited text (CSV and the like): one example a line, one number a cell.
///
/// The common case, exactly: cells are split at the separator; a cell may be quoted ("1.5", with ""
/// for a quote inside), but a quoted cell cannot span lines; spaces and tabs around a cell are ignored;
/// blank lines are skipped; an optional first line is a header, skipped after its cells are counted.
/// Numbers are read in the invariant culture (a '.' decimal point, no thousands separators) as
/// float32, correctly rounded; NaN, Infinity, inf and -inf (any case) are accepted as numbers, while a
/// finite number beyond float32's range (1e39) is an error rather than an infinity.
module Research.Core.Csv

open System
open System.Globalization
open System.IO
open System.Text
open TorchSharp
open Research.Core.Interop

let private fail (source: string) (what: string) : 'a =
    raise (InvalidDataException($"CSV file {source}: {what}"))

/// Ignorable white space around a cell: spaces and tabs, unless one is the separator.
let private isPadding (separator: char) (c: char) = (c = ' ' || c = '\t') && c <> separator

/// The cells of one line, unquoted, with the padding around them removed.
let private cells (source: string) (lineNumber: int) (separator: char) (line: string) : string[] =
    let result = ResizeArray()
    let mutable at = 0
    let mutable more = true
    while more do
        while at < line.Length && isPadding separator line.[at] do at <- at + 1
        let column = result.Count + 1
        if at < line.Length && line.[at] = '"' then
            let sb = StringBuilder()
            at <- at + 1
            let mutable closed = false
            while not closed do
                if at >= line.Length then
                    fail source $"line {lineNumber}, column {column}: a quoted cell is not closed on its line (cells spanning lines are not supported)"
                elif line.[at] = '"' && at + 1 < line.Length && line.[at + 1] = '"' then
                    sb.Append '"' |> ignore
                    at <- at + 2
                elif line.[at] = '"' then
                    at <- at + 1
                    closed <- true
                else
                    sb.Append line.[at] |> ignore
                    at <- at + 1
            while at < line.Length && isPadding separator line.[at] do at <- at + 1
            if at < line.Length && line.[at] <> separator then
                fail source $"line {lineNumber}, column {column}: text after the closing quote of a quoted cell"
            result.Add(sb.ToString().Trim([| ' '; '\t' |]))
        else
            let stop = line.IndexOf(separator, at)
            let stop = if stop < 0 then line.Length else stop
            result.Add(line.Substring(at, stop - at).Trim([| ' '; '\t' |]))
            at <- stop
        if at < line.Length then at <- at + 1 // past the separator: another cell follows, perhaps empty
        else more <- false
    result.ToArray()

/// A cell as float32: Ok, or Error saying why it is not one.
let private number (cell: string) : Result<float32, string> =
    match Single.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v when Single.IsInfinity v && not (cell.Contains("inf", StringComparison.OrdinalIgnoreCase)) ->
        // .NET rounds an overflow to infinity; in a data file it is more likely a mistake.
        Error $"'{cell}' is outside the range of float32 (±3.4e38)"
    | true, v -> Ok v
    | _ when cell = "" -> Error "is empty"
    | _ ->
        // What Python, NumPy and R write for the infinities.
        match cell.ToLowerInvariant() with
        | "inf" | "+inf" -> Ok Single.PositiveInfinity
        | "-inf" -> Ok Single.NegativeInfinity
        | _ -> Error $"'{cell}' is not a number"

let private checkSeparator (separator: char) =
    if separator = '"' || separator = '\n' || separator = '\r' then
        raise (ArgumentException($"The separator cannot be a quote or a line break, got '{separator}'.", "separator"))

/// Reads a numeric table from a reader, naming source in errors; see readArray.
let readReader (source: string) (reader: TextReader) (header: bool) (separator: char) : float32[,] =
    if isNull reader then nullArg "reader"
    checkSeparator separator
    let rows = ResizeArray<float32[]>()
    let mutable width = -1
    let mutable widthFrom = ""
    let mutable headerSeen = not header
    let mutable lineNumber = 0
    let mutable line = reader.ReadLine()
    while not (isNull line) do
        lineNumber <- lineNumber + 1
        if not (String.IsNullOrWhiteSpace line) then
            let cs = cells source lineNumber separator line
            if width < 0 then
                width <- cs.Length
                widthFrom <- if headerSeen then $"line {lineNumber}, the first data row," else $"the header (line {lineNumber})"
            elif cs.Length <> width then
                fail source $"line {lineNumber} has {cs.Length} cell(s) but {widthFrom} has {width}: every row must have the same number of cells"
            if not headerSeen then headerSeen <- true
            else
                let row = Array.zeroCreate<float32> cs.Length
                for j in 0 .. cs.Length - 1 do
                    match number cs.[j] with
                    | Ok v -> row.[j] <- v
                    | Error what ->
                        let hint = if rows.Count = 0 && not header then " (if the first line is a header, read with header = true)" else ""
                        fail source $"line {lineNumber} (data row {rows.Count + 1}), column {j + 1}: {what}{hint}"
                rows.Add row
        line <- reader.ReadLine()
    if rows.Count = 0 then
        fail source (if header && width >= 0 then "the file has a header but no data rows" else "the file holds no data rows (it is empty or blank)")
    Array2D.init rows.Count width (fun i j -> rows.[i].[j])

let private openText (path: string) : StreamReader =
    if isNull path then nullArg "path"
    if String.IsNullOrWhiteSpace path then raise (ArgumentException("The path is empty.", "path"))
    if not (File.Exists path) then raise (FileNotFoundException($"CSV file not found: {path}", path))
    new StreamReader(path, Encoding.UTF8, true)

/// Reads a numeric table (UTF-8, with or without a byte-order mark) as float32[rows, columns]: one row
/// per non-blank line, after the header line when header is true. Throws ArgumentException for a null
/// or empty path or a quote or line break as separator, FileNotFoundException for a missing file and
/// InvalidDataException, naming the file, for a row whose cell count differs from the first row's (or
/// the header's), a cell that is not a number (naming its line, data row and column), or a file
/// without data rows.
let readArray (path: string) (header: bool) (separator: char) : float32[,] =
    checkSeparator separator
    use r = openText path
    readReader path r header separator

/// Reads a numeric table as readArray does, into a CPU float32 tensor [rows, columns].
let read (path: string) (header: bool) (separator: char) : Tensor =
    let a = readArray path header separator
    ofArray2D a torch.CPU
