/// Mlp.initialise: a seeded initialisation reaches every affine and convolutional layer, whether it is given
/// directly or inside a container, so that models built from the same seed start from the same weights.
module Research.Core.Tests.InitialisationTests

open Expecto
open TorchSharp
open Research.Core

/// Every parameter's values, by name, after Mlp.initialise from a generator seeded with `seed`.
let private initialised (seed: int) (modules: torch.nn.Module list) =
    use g = new torch.Generator(uint64 seed)
    Mlp.initialise g Mlp.Uniform modules
    [ for m in modules do
        for struct (name, p) in m.named_parameters () -> name, p.data<float32>().ToArray() ]

/// Fresh layers: their construction draws from the process-global RNG, so two calls differ before initialise.
let private layers () : torch.nn.Module list =
    [ torch.nn.Linear(5L, 3L)
      torch.nn.Conv2d(2L, 4L, 3L)
      torch.nn.ConvTranspose2d(4L, 2L, 3L)
      torch.nn.Sequential(struct ("inner", torch.nn.Linear(3L, 2L) :> torch.nn.Module<torch.Tensor, torch.Tensor>)) ]

let tests =
    testList "Initialisation" [
        test "the same seed gives the same weights to bare layers and to layers inside containers" {
            let a = initialised 11 (layers ())
            let b = initialised 11 (layers ())
            Expect.equal (List.length a) 8 "a weight and a bias for each of the four layers"
            for (name, x), (_, y) in List.zip a b do
                Expect.sequenceEqual x y $"{name}: the same seed gives the same values"
            let c = initialised 12 (layers ())
            for (name, x), (_, y) in List.zip a c do
                Expect.isFalse (x = y) $"{name}: another seed gives other values"
        }
        test "Uniform draws every weight and bias within ±1/√fan_in, fan_in counting the kernel" {
            for layer, fanIn in [ torch.nn.Linear(50L, 40L) :> torch.nn.Module, 50.0; torch.nn.Conv2d(3L, 8L, 5L), 75.0 ] do
                let bound = 1.0 / sqrt fanIn
                for name, values in initialised 3 [ layer ] do
                    let largest = values |> Array.map (float >> abs) |> Array.max
                    Expect.isLessThanOrEqual largest bound $"{name} of a layer with fan_in {fanIn} within ±{bound:F4}"
                    Expect.isGreaterThan largest (0.5 * bound) $"{name} fills its range"
        }
    ]
