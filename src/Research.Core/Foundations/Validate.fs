/// Argument checks shared by every public entry point: each throws, before any work, an exception
/// that says what was wrong and what was expected.
module Research.Core.Validate

open System
open TorchSharp

type Tensor = torch.Tensor

/// Throws ArgumentOutOfRangeException unless value > 0.
let positive (name: string) (value: int) =
    if value <= 0 then raise (ArgumentOutOfRangeException(name, value, $"{name} must be positive, got {value}."))

/// Throws ArgumentOutOfRangeException unless value is a finite number > 0.
let positiveFinite (name: string) (value: float) =
    if not (Double.IsFinite value) || value <= 0.0 then
        raise (ArgumentOutOfRangeException(name, value, $"{name} must be a finite positive number, got {value}."))

/// Throws ArgumentOutOfRangeException unless value is a finite number ≥ 0.
let nonNegativeFinite (name: string) (value: float) =
    if not (Double.IsFinite value) || value < 0.0 then
        raise (ArgumentOutOfRangeException(name, value, $"{name} must be a finite number ≥ 0, got {value}."))

/// The smallest and largest value of a floating-point tensor in one pass (None for other dtypes). Min and
/// max propagate NaN, and an infinity is an extreme, so both are finite exactly when every value is; the
/// element-wise masks that locate a bad value are only built when there is one.
let private range (data: Tensor) =
    if data.is_floating_point () then
        let struct (lo, hi) = data.aminmax(Nullable(), false)
        use lo = lo
        use hi = hi
        Some(lo.to_type(torch.ScalarType.Float64).item<float> (), hi.to_type(torch.ScalarType.Float64).item<float> ())
    else None

/// The shape checks of a data matrix: 2-D, at least `minRows` rows, at least one column.
let private shape (name: string) (minRows: int) (data: Tensor) =
    Native.ensureLoaded ()
    if isNull data then nullArg name
    if data.dim () <> 2L then
        raise (ArgumentException($"{name} must be a matrix with one example per row, got shape %A{data.shape}.", name))
    if data.shape.[0] = 0L then raise (ArgumentException($"{name} is empty: at least one row is required.", name))
    if data.shape.[0] < int64 minRows then
        raise (ArgumentException($"{name} has {data.shape.[0]} rows but at least {minRows} are required.", name))
    if data.shape.[1] = 0L then raise (ArgumentException($"{name} has no columns.", name))

/// The column count a model expects.
let private columns (name: string) (features: int) (data: Tensor) =
    if not (isNull data) && data.dim () = 2L && data.shape.[1] <> int64 features then
        raise (ArgumentException($"{name} has {data.shape.[1]} columns but the model expects {features} features.", name))

/// Throws, naming the first NaN or infinity, when there is one.
let private locateNonFinite (name: string) (data: Tensor) =
    use finite = torch.isfinite data
    use allFinite = finite.all()
    if not (allFinite.item<bool> ()) then
        use bad = torch.logical_not(finite).nonzero()
        let row, col = bad.[0L, 0L].item<int64> (), bad.[0L, 1L].item<int64> ()
        raise (ArgumentException($"{name} contains NaN or infinity (first at row {row}, column {col}).", name))

/// Throws, naming the first value outside [0, 1], when there is one.
let private locateOutsideUnit (name: string) (data: Tensor) =
    use lo = Scalars.ofFloat32 0.0f
    use hi = Scalars.ofFloat32 1.0f
    use outside = torch.logical_or(data.lt(lo), data.gt(hi))
    use anyOutside = outside.any()
    if anyOutside.item<bool> () then
        use bad = outside.nonzero()
        let row, col = bad.[0L, 0L].item<int64> (), bad.[0L, 1L].item<int64> ()
        use v = data.[row, col]
        raise (ArgumentException(
            $"{name} must lie in [0, 1] for a Bernoulli likelihood, but row {row}, column {col} is {v.item<float32> ()}.", name))

/// The shape checks, then one pass over the values: a range that `accepts` passes; otherwise (or for a
/// dtype without a range) `locate` looks for the bad value and throws naming it.
let private values (name: string) (minRows: int) (data: Tensor) (accepts: float * float -> bool) (locate: string -> Tensor -> unit) =
    shape name minRows data
    // Frees every temporary of the check, also when it throws.
    use _ = torch.NewDisposeScope()
    match range data with
    | Some r when accepts r -> ()
    | _ -> locate name data

/// Checks a data matrix of any width: 2-D, at least `minRows` rows, every value finite.
let rows (name: string) (minRows: int) (data: Tensor) =
    values name minRows data (fun (lo, hi) -> Double.IsFinite lo && Double.IsFinite hi) locateNonFinite

/// Checks a data matrix for a model: 2-D, at least one row, `features` columns, every value finite.
let matrix (name: string) (features: int) (data: Tensor) =
    columns name features data
    rows name 1 data

/// Checks a data matrix for a Bernoulli model: as `matrix`, and every value in [0, 1], in one pass over
/// the data (a range inside [0, 1] is finite).
let unitMatrix (name: string) (features: int) (data: Tensor) =
    columns name features data
    values name 1 data (fun (lo, hi) -> lo >= 0.0 && hi <= 1.0) (fun name data ->
        locateNonFinite name data
        locateOutsideUnit name data)

/// Checks a list of layer sizes: every entry positive.
let sizes (name: string) (values: int seq) =
    if isNull (box values) then nullArg name
    values |> Seq.iteri (fun i v ->
        if v <= 0 then raise (ArgumentOutOfRangeException(name, v, $"{name}[{i}] must be positive, got {v}.")))

/// Checks the sizes of an encoder–decoder: positive input and latent sizes, positive hidden sizes, and a
/// latent size no larger than the input (a code that does not compress is a mistake, not a model).
let architecture (inputSize: int) (latentSize: int) (hiddenSizes: int seq) =
    positive "InputSize" inputSize
    positive "LatentSize" latentSize
    sizes "HiddenSizes" hiddenSizes
    if latentSize > inputSize then
        raise (ArgumentOutOfRangeException("LatentSize", latentSize,
                $"LatentSize ({latentSize}) must not exceed InputSize ({inputSize}): the code would not compress."))
