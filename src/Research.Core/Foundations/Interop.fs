/// Conversions between .NET arrays and tensors (one example per row).
module Research.Core.Interop

open System
open System.Runtime.InteropServices
open TorchSharp

type Tensor = torch.Tensor

/// A float32 tensor [rows, cols] holding a copy of a rectangular array.
let ofArray2D (a: float32[,]) (device: torch.Device) : Tensor =
    if isNull a then nullArg "a"
    Native.ensureLoaded ()
    let rows, cols = Array2D.length1 a, Array2D.length2 a
    // float32[,] is laid out row-major and contiguous: view it as a span without copying twice.
    let flat = if rows * cols = 0 then [||] else MemoryMarshal.CreateReadOnlySpan(&a.[0, 0], rows * cols).ToArray()
    torch.tensor(flat, ReadOnlySpan<int64>([| int64 rows; int64 cols |]), device = device)

/// A float32 tensor [rows, cols] from a row-major span.
let ofSpan (values: ReadOnlySpan<float32>) (rows: int) (device: torch.Device) : Tensor =
    Native.ensureLoaded ()
    if rows <= 0 then raise (ArgumentOutOfRangeException("rows", rows, "The row count must be positive."))
    if values.Length % rows <> 0 then
        raise (ArgumentException($"{values.Length} values do not split into {rows} rows of equal length.", "values"))
    torch.tensor(values.ToArray(), ReadOnlySpan<int64>([| int64 rows; int64 (values.Length / rows) |]), device = device)

/// Copies a 2-D tensor (any float dtype, any device) into a float32[rows, cols].
let toArray2D (t: Tensor) : float32[,] =
    if t.dim () <> 2L then invalidArg "t" $"Expected a 2-D tensor, got shape %A{t.shape}."
    let rows, cols = int t.shape.[0], int t.shape.[1]
    // TorchSharp's accessor throws on an empty tensor: there is nothing to copy anyway.
    if rows * cols = 0 then Array2D.zeroCreate rows cols else
    use _ = torch.NewDisposeScope() // frees the intermediate tensors of the conversion chain
    use c = t.detach().to_type(torch.ScalarType.Float32).cpu().contiguous()
    let flat = c.data<float32>().ToArray()
    let result = Array2D.zeroCreate rows cols
    if rows * cols > 0 then flat.AsSpan().CopyTo(MemoryMarshal.CreateSpan(&result.[0, 0], rows * cols))
    result

/// Copies a 1-D tensor into a float32 array.
let toArray (t: Tensor) : float32[] =
    use _ = torch.NewDisposeScope()
    use c = t.detach().to_type(torch.ScalarType.Float32).cpu().contiguous()
    c.data<float32>().ToArray()

/// Copies a 1-D tensor into a float array (float64).
let toDoubleArray (t: Tensor) : float[] =
    use _ = torch.NewDisposeScope()
    use c = t.detach().to_type(torch.ScalarType.Float64).cpu().contiguous()
    c.data<float>().ToArray()

/// A float32[rows, cols] from jagged rows, checking that every row has the same length.
let ofJagged (rows: float32[][]) : float32[,] =
    if isNull rows then nullArg "rows"
    if rows.Length = 0 then raise (ArgumentException("The data set is empty: at least one row is required.", "rows"))
    let cols = if isNull rows.[0] then nullArg "rows[0]" else rows.[0].Length
    rows |> Array.iteri (fun i r ->
        if isNull r then raise (ArgumentNullException($"rows[{i}]"))
        if r.Length <> cols then
            raise (ArgumentException($"Row {i} has {r.Length} values but row 0 has {cols}: rows must have equal length.", "rows")))
    Array2D.init rows.Length cols (fun i j -> rows.[i].[j])
