/// Training curves for TensorBoard: one scalar per tag and epoch, written with TorchSharp's SummaryWriter
/// (TensorBoard's event-file format: length-prefixed, CRC-checked records of protobuf `Event`s).
module Research.Core.TensorBoardLog

open System
open System.IO
open TorchSharp

/// The tags of an epoch's scalars: "loss/train", "loss/validation", and a model's own terms as
/// "<term>/train" and "<term>/validation" (for a VAE, "kl" and "reconstruction").
let tag (name: string) (split: string) = $"{name}/{split}"

/// Rows of the training data the per-term scalars are computed on: the first ones, the same every epoch,
/// so the curve follows the model and not the sample (a pass over this many rows costs a fraction of an epoch).
[<Literal>]
let TrainingTermRows = 10000L

/// Checks a log folder before any training: a non-empty path that is not an existing file.
let validateFolder (folder: string) =
    if String.IsNullOrWhiteSpace folder then raise (ArgumentException("The TensorBoard log folder is empty.", "TensorBoard"))
    if File.Exists folder then
        raise (ArgumentException($"The TensorBoard log folder '{folder}' is an existing file.", "TensorBoard"))

/// A Progress function that writes each epoch's losses and the model's terms into an event file in `folder`
/// (created if needed; each Fit adds a new file, as PyTorch's SummaryWriter does). `terms` maps a data set
/// to named per-example means; it runs on the first TrainingTermRows training rows and on the validation set.
let progress (folder: string) (data: torch.Tensor) (validation: torch.Tensor option)
             (terms: torch.Tensor -> (string * float) list) : Training.EpochReport -> unit =
    validateFolder folder
    let writer = torch.utils.tensorboard.SummaryWriter(folder)
    let head = data.narrow(0L, 0L, min TrainingTermRows data.shape.[0])
    fun report ->
        let put name split (value: float) = writer.add_scalar(tag name split, float32 value, report.Epoch)
        put "loss" "train" report.TrainLoss
        report.ValidationLoss |> Option.iter (put "loss" "validation")
        for name, value in terms head do put name "train" value
        validation |> Option.iter (fun v -> for name, value in terms v do put name "validation" value)
