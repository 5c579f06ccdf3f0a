/// Baldi & Hornik (1989): a linear autoencoder's optimum spans the top-k principal subspace, and its
/// error is the discarded variance (Eckart–Young).
module Research.Core.Tests.LinearAeTests

open Expecto
open TorchSharp
open Research.Core

/// n rows of rank-`rank` signal in P dimensions plus isotropic noise, from a seeded generator.
let lowRankPlusNoise (seed: int) n p rank (noise: float32) =
    use g = new torch.Generator(uint64 seed)
    use factors = torch.randn([| int64 n; int64 rank |], generator = g)
    use loadings = torch.randn([| int64 rank; int64 p |], generator = g)
    use eps = torch.randn([| int64 n; int64 p |], generator = g)
    factors.matmul(loadings) + eps * noise

let private train (data: torch.Tensor) k seed =
    let ae =
        new Autoencoder.Autoencoder(
            { InputSize = int data.shape.[1]; LatentSize = k; HiddenSizes = []; Linear = true; Activation = Mlp.ReLU; Init = Mlp.Uniform; Convolutional = None; Seed = seed; Device = "cpu" })
    // Full-batch Adam: no minibatch noise floor, so the optimum is reached, not just approached.
    ae.Fit(data, { Training.defaults with Epochs = 1500; BatchSize = 400; LearningRate = 1e-2; Seed = seed }) |> ignore
    ae

/// The row space of a linear decoder: g(e_i) − g(0) for the unit codes e_i.
let decoderSpan (ae: Autoencoder.Autoencoder) k =
    use eye = torch.eye(int64 k)
    use zero = torch.zeros(1L, int64 k)
    use ge = ae.Decode eye
    use g0 = ae.Decode zero
    ge - g0

let tests =
    testList "LinearAe" [
        testPropertyWithConfig (Accuracy.properties 3) "spans the PCA subspace and reaches the discarded variance" <| fun (seed: uint16) ->
            let seed = int seed
            use data = lowRankPlusNoise seed 400 12 3 0.1f
            let k = 3
            let pca = Pca.fit data k
            use ae = train data k seed
            use span = decoderSpan ae k
            let angles = Subspace.principalAngles span pca.Components
            Expect.isLessThan angles.[k - 1] 2.0 $"largest principal angle to the PCA subspace (degrees): %A{angles}"
            let aeError = ae.ReconstructionError data
            let pcaError = Pca.reconstructionError pca data
            Expect.floatClose Accuracy.training aeError pcaError "AE error ≈ PCA error (Eckart–Young bound)"
            Expect.isGreaterThanOrEqual aeError (pcaError * (1.0 - 1e-4)) "no rank-k map beats PCA"
    ]
