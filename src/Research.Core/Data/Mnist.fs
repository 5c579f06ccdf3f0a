/// Loads the MNIST digits from their IDX files into pixel rows scaled to [0, 1] and integer labels.
module Research.Core.Mnist

open System
open System.IO
open System.Runtime.InteropServices
open TorchSharp
open Research.Core.Interop

/// Which half of MNIST to load: the 60000 training digits or the 10000 test digits.
type Split =
    /// The training set (files named train-*).
    | Train
    /// The test set (files named t10k-*).
    | Test

/// Pixels per image side; MNIST images are 28 × 28.
[<Literal>]
let Side = 28

/// Pixels per image, the width of a row of the loaded matrix.
[<Literal>]
let Pixels = 784

/// The first existing file among the spellings MNIST is distributed under (dash or dot before
/// "idx", each optionally gzip-compressed); FileNotFoundException listing every name tried otherwise.
let private find (directory: string) (stem: string) (kind: string) =
    let names =
        [ $"{stem}-{kind}-ubyte"; $"{stem}.{kind}-ubyte" ] |> List.collect (fun n -> [ n; n + ".gz" ])
    match names |> List.tryFind (fun n -> File.Exists(Path.Combine(directory, n))) with
    | Some n -> Path.Combine(directory, n)
    | None ->
        let where = if Directory.Exists directory then directory else $"{directory} (the folder does not exist)"
        let tried = String.Join(", ", names)
        raise (FileNotFoundException($"No MNIST {stem} file in {where}; tried {tried}.", Path.Combine(directory, names.Head)))

/// The image count, the raw pixel bytes (row-major, one image per 784 bytes) and the labels of a split,
/// with the shapes and label range checked.
let private readRaw (directory: string) (split: Split) : int * byte[] * int[] =
    if isNull directory then nullArg "directory"
    let stem = match split with Train -> "train" | Test -> "t10k"
    let imagesPath = find directory $"{stem}-images" "idx3"
    let labelsPath = find directory $"{stem}-labels" "idx1"
    let images = Idx.read imagesPath
    let labels = Idx.read labelsPath
    let bad (path: string) (what: string) : 'a = raise (InvalidDataException($"MNIST file {path}: {what}"))
    match images.Dimensions with
    | [| _; Side; Side |] -> ()
    | dims -> bad imagesPath $"expected images of shape [n, 28, 28], found %A{dims}"
    if labels.Dimensions.Length <> 1 then
        bad labelsPath $"expected a 1-D array of labels, found shape %A{labels.Dimensions}"
    let n = images.Dimensions.[0]
    if labels.Dimensions.[0] <> n then
        bad labelsPath $"{labels.Dimensions.[0]} labels for {n} images in {imagesPath}"
    let ys = Array.zeroCreate<int> n
    for i in 0 .. n - 1 do
        let y = int labels.Data.[i]
        if y > 9 then bad labelsPath $"label {i} is {y}, outside the digits 0..9"
        ys.[i] <- y
    n, images.Data, ys

/// Loads a split from directory: images as a float32 CPU tensor [n, 784] with pixels divided by 255
/// into [0, 1], and their digit labels 0..9. File names may use "-idx3-ubyte" or ".idx3-ubyte" and
/// may carry a ".gz" suffix. Throws FileNotFoundException listing the names tried when a file is
/// missing, and InvalidDataException when the files are malformed or do not match each other.
let load (directory: string) (split: Split) : Tensor * int[] =
    let n, pixels, labels = readRaw directory split
    Native.ensureLoaded ()
    // Convert in libtorch: one byte tensor, one float tensor, no float32[] copy on the managed heap.
    use raw = torch.tensor(pixels, ReadOnlySpan<int64>([| int64 n; int64 Pixels |]))
    use asFloat = raw.to_type(torch.ScalarType.Float32)
    use levels = Scalars.ofFloat32 255.0f
    asFloat.div(levels), labels

/// Like load, but returns the images as a float32[n, 784] array (for callers outside TorchSharp).
let loadArrays (directory: string) (split: Split) : float32[,] * int[] =
    let n, pixels, labels = readRaw directory split
    let scale = Array.init 256 (fun b -> float32 b / 255.0f)
    let result = Array2D.zeroCreate<float32> n Pixels
    // The array is row-major and contiguous: fill it as one span.
    let flat = MemoryMarshal.CreateSpan(&result.[0, 0], n * Pixels)
    for i in 0 .. flat.Length - 1 do
        flat.[i] <- scale.[int pixels.[i]]
    result, labels

/// A fixed binarisation x ~ Bernoulli(pixel) of `images` (values in [0, 1]), drawn from a generator seeded
/// with `seed`: the same seed gives the same bits. The protocol of the binarised-MNIST literature binarises
/// the test set once and keeps it; training sets are resampled every minibatch instead (DynamicBinarization).
let binarize (images: Tensor) (seed: int) : Tensor =
    if isNull images then nullArg "images"
    Validate.unitMatrix "images" (if images.dim () = 2L then int images.shape.[1] else 0) images
    use generator = new torch.Generator(uint64 seed, images.device)
    torch.bernoulli(images, generator)
