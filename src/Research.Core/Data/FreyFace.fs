/// The Frey Face data set of the AEVB paper's Figure 2 (right): 1965 grey 20×28 face images, as Sam
/// Roweis distributed them in frey_rawface.mat (a uint8 matrix 'ff' of 560 × 1965, one image per column).
module Research.Core.FreyFace

open TorchSharp

/// Image height in pixels.
[<Literal>]
let height = 28

/// Image width in pixels.
[<Literal>]
let width = 20

/// Reads frey_rawface.mat into a float32 tensor [1965, 560] of pixel intensities scaled to [0, 1], one
/// image per row in row-major order (reshape a row to [28, 20] to view it). Throws InvalidDataException
/// when the file's 'ff' is not a 560-row matrix.
let load (path: string) : torch.Tensor =
    let ff = MatFile.read path "ff"
    if ff.Dimensions.Length <> 2 || ff.Dimensions.[0] <> height * width then
        raise (System.IO.InvalidDataException($"{path}: 'ff' is %A{ff.Dimensions}, not {height * width} × images."))
    // Column-major [560, n] is row-major [n, 560]: each column, one image, becomes a row.
    let shape = [| int64 ff.Dimensions.[1]; int64 (height * width) |]
    use t = torch.tensor(ff.Data, System.ReadOnlySpan shape)
    use levels = Scalars.ofFloat32 255.0f
    t / levels
