/// The flat parameter buffer and the optimisers that update it: the first step against its closed form,
/// and many steps against TorchSharp's own torch.optim implementations of the same methods.
module Research.Core.Tests.OptimisersTests

open System
open Expecto
open TorchSharp
open Research.Core

type Tensor = torch.Tensor

/// Parameters of assorted shapes (a weight matrix, a bias, a 3-D tensor), the same values for one seed.
let private parameters seed =
    use g = new torch.Generator(uint64 seed)
    [ for shape in [ [| 5L; 7L |]; [| 7L |]; [| 2L; 3L; 4L |] ] ->
        new Modules.Parameter(torch.randn(shape, generator = g)) ]

/// Random gradients for `ps`, a fresh draw for each step.
let private gradients (g: torch.Generator) (ps: Modules.Parameter list) =
    [ for p in ps -> torch.randn(p.shape, generator = g) * 3.0 ]

let private values (ps: Modules.Parameter list) =
    ps |> List.collect (fun p -> use f = p.detach().flatten() in Interop.toArray f |> Array.map float |> List.ofArray)

let private maxRelative (a: float list) (b: float list) =
    List.map2 (fun x y -> abs (x - y) / max 1.0 (abs y)) a b |> List.max

/// Runs `steps` steps of our rule and of TorchSharp's optimiser on the same gradients; returns both.
let private against (ours: FlatParameters.FlatParameters -> Optimisers.IStepRule)
                    (theirs: Modules.Parameter list -> torch.optim.Optimizer) steps =
    let a, b = parameters 3, parameters 3
    use flat = new FlatParameters.FlatParameters(a)
    use rule = ours flat
    use opt = theirs b
    use g = new torch.Generator(4UL)
    for _ in 1 .. steps do
        let grads = gradients g a
        rule.ZeroGrad()
        use _ = torch.no_grad ()
        for p, grad in List.zip a grads do
            use pg = p.grad
            pg.add_(grad) |> ignore
        for p, grad in List.zip b grads do p.grad <- grad
        rule.Step()
        opt.step () |> ignore
        for t in grads do t.Dispose()
    values a, values b

/// 200 steps of our rule and of TorchSharp's optimiser on the same gradients end at the same weights, up to
/// float32 rounding, and those weights moved.
let private follows ours theirs =
    let a, b = against ours theirs 200
    Expect.isLessThan (maxRelative a b) 1e-5 "the same update, up to float32 rounding"
    Expect.isGreaterThan (maxRelative a (values (parameters 3))) 0.1 "and the weights did move"

/// One step of `make` from fresh state: every weight must move by lr·g/(|g| + ε) against its gradient
/// (Adam's bias-corrected first step and Adagrad's first step both reduce to this), the flat buffer's
/// Previous must hold the weights from before, bit for bit, and ZeroGrad must then leave every gradient zero.
let private firstStep (make: FlatParameters.FlatParameters -> Optimisers.IStepRule) lr eps (formula: string) =
    let ps = parameters 2
    let before = values ps
    use flat = new FlatParameters.FlatParameters(ps)
    use rule = make flat
    use g = new torch.Generator(9UL)
    let grads = gradients g ps
    for p, grad in List.zip ps grads do
        use pg = p.grad
        pg.copy_(grad) |> ignore
    rule.Step()
    let gs = grads |> List.collect (fun t -> Interop.toArray (t.flatten()) |> Array.map float |> List.ofArray)
    let expected = List.map2 (fun w g -> w - lr * g / (abs g + eps)) before gs
    Expect.isLessThan (maxRelative (values ps) expected) 1e-6 formula
    Expect.sequenceEqual (Interop.toArray flat.Previous |> Array.map float) before "Previous holds θ₀, bit for bit"
    Expect.sequenceEqual (Interop.toArray flat.Values |> Array.map float) (values ps) "the parameters are views of Values"
    rule.ZeroGrad()
    Expect.equal (flat.Grads.abs().sum().item<float32> ()) 0.0f "ZeroGrad leaves every gradient zero"

/// Five steps of `make` on 10⁶ + 3 weights (many SIMD vectors and a scalar tail) with seeded gradients;
/// returns the new and the previous weights, end to end.
let private fiveSteps (make: FlatParameters.FlatParameters -> Optimisers.IStepRule) =
    use g = new torch.Generator(12UL)
    let p = new Modules.Parameter(torch.randn([| 1000003L |], generator = g))
    use flat = new FlatParameters.FlatParameters([ p ])
    use rule = make flat
    for _ in 1 .. 5 do
        rule.ZeroGrad()
        use grad = torch.randn([| 1000003L |], generator = g)
        flat.Grads.add_(grad) |> ignore
        rule.Step()
    torch.cat([| flat.Values; flat.Previous |])

let tests =
    testList "Optimisers" [
        test "the flat buffer holds the parameters: writing it changes them, backward fills its gradients, Flip re-points them, Dispose detaches them" {
            let ps = parameters 1
            let before = values ps
            use flat = new FlatParameters.FlatParameters(ps)
            Expect.equal flat.Count (5L * 7L + 7L + 24L) "one entry per scalar parameter"
            Expect.equal (values ps) before "the parameters keep their values"
            do
                use _ = torch.no_grad ()
                flat.Values.add_((1.0).ToScalar()) |> ignore
            Expect.sequenceEqual (values ps) (before |> List.map (fun v -> float (float32 v + 1.0f))) "the parameters are views of Values"
            // d/dθ Σ θ² = 2θ, accumulated into the flat gradient buffer.
            let loss = ps |> List.map (fun p -> p.square().sum()) |> List.reduce (+)
            loss.backward ()
            use expected = flat.Values * 2.0
            Expect.isTrue (flat.Grads.allclose(expected)) "backward wrote 2θ into Grads"
            // Flip: the parameters become views of the other buffer, which is then Values.
            let other = flat.Previous
            do
                use _ = torch.no_grad ()
                other.fill_((3.0).ToScalar()) |> ignore
            flat.Flip()
            Expect.isTrue (obj.ReferenceEquals(flat.Values, other)) "Previous became Values"
            Expect.isTrue (values ps |> List.forall ((=) 3.0)) "the parameters show the other buffer"
            flat.Grads.zero_() |> ignore
            let loss2 = ps |> List.map (fun p -> p.sum()) |> List.reduce (+)
            loss2.backward ()
            Expect.equal (flat.Grads.sum().item<float32> ()) (float32 flat.Count) "backward still fills Grads after a Flip"
            (flat :> IDisposable).Dispose()
            Expect.isTrue (ps |> List.forall (fun p -> isNull p.grad)) "Dispose detaches the gradients"
            Expect.isTrue (ps |> List.forall (fun p -> p.requires_grad)) "the parameters stay trainable"
        }
        test "the first Adam step moves every weight by lr·g/(|g| + ε) against its gradient (bias correction)" {
            firstStep (fun f -> Optimisers.adam f 0.01 0.0) 0.01 1e-8 "θ₁ = θ₀ − lr·m̂/(√v̂ + ε) with m̂ = g, v̂ = g²"
        }
        test "the first Adagrad step moves every weight by lr·g/(|g| + ε) against its gradient" {
            firstStep (fun f -> Optimisers.adagrad f 0.1 0.0) 0.1 1e-10 "θ₁ = θ₀ − lr·g/(√(g²) + ε)"
        }
        test "Adam with weight decay follows torch.optim.Adam over 200 steps" {
            follows (fun f -> Optimisers.adam f 0.01 0.05) (fun ps -> torch.optim.Adam(ps, lr = 0.01, weight_decay = 0.05))
        }
        test "Adam as tensor operations (the GPU path) follows torch.optim.Adam over 200 steps too" {
            follows (fun f -> Optimisers.adamUnfused f 0.01 0.05) (fun ps -> torch.optim.Adam(ps, lr = 0.01, weight_decay = 0.05))
        }
        test "the one-pass CPU kernel and the tensor operations agree on the new and the previous weights over 10⁶ + 3 weights" {
            use fused = fiveSteps (fun f -> Optimisers.adam f 0.01 0.1)
            use plain = fiveSteps (fun f -> Optimisers.adamUnfused f 0.01 0.1)
            use diff = (fused - plain).abs().max()
            Expect.isLessThan (diff.item<float32> () |> float) 1e-6 "largest difference after 5 steps"
            Expect.isTrue (CpuMemory.applies fused) "the CPU float32 buffer takes the one-pass kernel"
        }
        test "Adagrad with weight decay follows torch.optim.Adagrad over 200 steps" {
            follows (fun f -> Optimisers.adagrad f 0.1 0.05) (fun ps -> torch.optim.Adagrad(ps, lr = 0.1, weight_decay = 0.05))
        }
        test "Adagrad as tensor operations (the GPU path) follows torch.optim.Adagrad over 200 steps too" {
            follows (fun f -> Optimisers.adagradUnfused f 0.1 0.05) (fun ps -> torch.optim.Adagrad(ps, lr = 0.1, weight_decay = 0.05))
        }
        test "Adagrad's one-pass CPU kernel and its tensor operations agree on the new and the previous weights over 10⁶ + 3 weights" {
            use fused = fiveSteps (fun f -> Optimisers.adagrad f 0.05 0.1)
            use plain = fiveSteps (fun f -> Optimisers.adagradUnfused f 0.05 0.1)
            use diff = (fused - plain).abs().max()
            Expect.isLessThan (diff.item<float32> () |> float) 1e-6 "largest difference after 5 steps"
        }
        test "parameters of different dtypes are refused before any change" {
            let ps = [ new Modules.Parameter(torch.zeros(3L)); new Modules.Parameter(torch.zeros(3L, dtype = torch.float64)) ]
            Expect.throwsT<ArgumentException> (fun () -> new FlatParameters.FlatParameters(ps) |> ignore) "mixed dtypes"
            Expect.isTrue (ps |> List.forall (fun p -> isNull p.grad)) "nothing was attached"
        }
    ]
