/// A resumable run survives SIGKILL: a child process training with a run checkpoint is killed at random moments
/// (mid-epoch and during the checkpoint's write), restarted each time, and its final weights are bit-identical
/// to those of a run that was never interrupted; a partial file is never read (the child would fail on it). Every
/// other start also writes the checkpoint within epochs (CheckpointEveryBatches), so some restarts resume mid-epoch.
module Research.Core.Tests.ResumeKillTests

open System
open System.Diagnostics
open System.IO
open Expecto
open TorchSharp
open Research.Core

let private epochs = 25

/// The run: a small VAE on seeded data, Adagrad with weight decay (the paper's optimiser), `epochs` epochs.
let private train (checkpoint: string option) (every: int option) (progress: Training.EpochReport -> unit) =
    use g = new torch.Generator(17UL)
    use x = torch.bernoulli(torch.rand([| 3000L; 64L |], generator = g) * 0.7, g)
    use vae = new Vae.VariationalAutoencoder({ Vae.defaults 64 4 with HiddenSizes = [ 96 ]; Seed = 2; Device = "cpu" })
    vae.Fit(x, { Training.defaults with
                   Epochs = epochs; BatchSize = 50; Optimizer = Training.Adagrad; LearningRate = 0.05; WeightDecay = 1e-4
                   CheckpointPath = checkpoint; CheckpointEveryBatches = every; Progress = progress }) |> ignore
    [| for _, p in vae.Networks.NamedParameters do yield! p.data<float32>().ToArray() |]
    |> Array.collect BitConverter.GetBytes

/// The child mode: trains with the checkpoint (also after every `every` minibatches when positive), printing each
/// epoch, then writes the weights' bytes to `out`.
let child (checkpoint: string) (out: string) (every: int) =
    let bytes = train (Some checkpoint) (if every > 0 then Some every else None) (fun r -> printfn "epoch %d" r.Epoch; Console.Out.Flush())
    File.WriteAllBytes(out, bytes)
    0

let tests =
    testList "ResumeKill" [
        test "a child killed with SIGKILL at random moments and restarted ends bit-identical to the straight run" {
            let dir = Directory.CreateTempSubdirectory("research-kill-")
            try
                let straight = train None None ignore
                let checkpoint, out = Path.Combine(dir.FullName, "run.checkpoint"), Path.Combine(dir.FullName, "weights.bin")
                let rng = Random 11
                let mutable kills = 0
                let mutable finished = false
                let mutable starts = 0
                while not finished do
                    starts <- starts + 1
                    if starts > 40 then failtest "the run did not finish in 40 starts"
                    let psi = ProcessStartInfo(Environment.ProcessPath, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
                    if Path.GetFileNameWithoutExtension Environment.ProcessPath = "dotnet" then
                        psi.ArgumentList.Add(Reflection.Assembly.GetEntryAssembly().Location)
                    for a in [ "--resume-child"; checkpoint; out; (if starts % 2 = 0 then "7" else "0") ] do psi.ArgumentList.Add a
                    use p = Process.Start psi
                    let errors = p.StandardError.ReadToEndAsync()
                    // Kill after a random number of this child's epochs (up to 4), plus 0–40 ms: mid-epoch or mid-write.
                    let killAfter = if kills < 4 then rng.Next(1, 5) else Int32.MaxValue
                    let mutable seen = 0
                    let mutable line = p.StandardOutput.ReadLine()
                    while not (isNull line) do
                        if line.StartsWith "epoch " then
                            seen <- seen + 1
                            if seen = killAfter then
                                Threading.Thread.Sleep(rng.Next 40)
                                p.Kill()   // SIGKILL on Linux
                                kills <- kills + 1
                        line <- p.StandardOutput.ReadLine()
                    p.WaitForExit()
                    if seen < killAfter then
                        Expect.equal p.ExitCode 0 $"an unkilled child exits cleanly: {errors.Result}"
                        finished <- true
                Expect.isGreaterThanOrEqual kills 4 "the run was killed at least four times"
                let resumed = File.ReadAllBytes out
                Expect.equal resumed.Length straight.Length "the same parameters"
                Expect.isTrue (resumed = straight) "the killed and resumed run ends bit-identical to the straight one"
            finally dir.Delete(true)
        }
    ]
