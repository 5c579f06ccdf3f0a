module Research.Core.Tests.DiffTests

open System
open Expecto
open TorchSharp
open Research.Core

/// A float64 vector from an array.
let private vec (a: float[]) = torch.tensor(a, dtype = torch.float64)

/// Deterministic random float64 vectors / matrices for the sweeps.
let private randn (g: torch.Generator) (shape: int64[]) =
    torch.randn(ReadOnlySpan<int64>(shape), dtype = torch.float64, generator = g)

let private expectAll (actual: torch.Tensor) (expected: torch.Tensor) (message: string) =
    Expect.sequenceEqual actual.shape expected.shape $"{message}: shape"
    let a, e = Interop.toDoubleArray (actual.flatten()), Interop.toDoubleArray (expected.flatten())
    Array.iteri2 (fun i x y -> Expect.floatClose Accuracy.double x y $"{message}: element {i}") a e

let tests =
    testList "Diff" [
        test "grad of Σ x³ is 3x² and of Σ sin x is cos x (random points)" {
            use g = new torch.Generator(1UL)
            for _ in 1 .. 10 do
                let x = randn g [| 5L |]
                expectAll (Diff.grad (fun x -> (x * x * x).sum()) x) (x * x * 3.0) "∇Σx³"
                expectAll (Diff.grad (fun x -> x.sin().sum()) x) (x.cos()) "∇Σ sin x"
        }

        test "fgrad returns f(x) and ∇f(x) of a quadratic form ½xᵀAx + bᵀx" {
            use g = new torch.Generator(2UL)
            let a = randn g [| 4L; 4L |]
            let b = randn g [| 4L |]
            let x = randn g [| 4L |]
            let f (x: torch.Tensor) = (x.matmul(a.matmul(x)) * 0.5) + b.dot(x)
            let value, gradient = Diff.fgrad f x
            Expect.floatClose Accuracy.double (value.item<float>()) ((f x).item<float>()) "the value is f(x)"
            // ∇(½xᵀAx + bᵀx) = ½(A + Aᵀ)x + b.
            expectAll gradient ((a + a.T).matmul(x) * 0.5 + b) "the gradient"
        }

        test "gradv is ∇f(x)·v" {
            use g = new torch.Generator(3UL)
            let f (x: torch.Tensor) = (x.sin() * x * x).sum()
            for _ in 1 .. 10 do
                let x, v = randn g [| 6L |], randn g [| 6L |]
                // d/dx (x² sin x) = 2x sin x + x² cos x.
                let analytic = ((x * x.sin() * 2.0 + x * x * x.cos()) * v).sum()
                Expect.floatClose Accuracy.double ((Diff.gradv f x v).item<float>()) (analytic.item<float>()) "∇f·v"
                Expect.equal (Diff.gradv f x v).shape [||] "a scalar tensor"
        }

        test "jacobian of (x₀x₁, sin x₂, x₀²) is analytic, [m,n]" {
            use g = new torch.Generator(4UL)
            let f (x: torch.Tensor) = torch.stack([| x.[0] * x.[1]; x.[2].sin(); x.[0] * x.[0] |], 0L)
            for _ in 1 .. 5 do
                let x = randn g [| 3L |]
                let v = Interop.toDoubleArray x
                let expected =
                    array2D [ [ v.[1]; v.[0]; 0.0 ]
                              [ 0.0; 0.0; cos v.[2] ]
                              [ 2.0 * v.[0]; 0.0; 0.0 ] ]
                expectAll (Diff.jacobian f x) (torch.tensor(expected, dtype = torch.float64)) "J"
        }

        test "jacobian of a linear map Ax is A (non-square)" {
            use g = new torch.Generator(5UL)
            let a = randn g [| 3L; 5L |]
            expectAll (Diff.jacobian (fun x -> a.matmul(x)) (randn g [| 5L |])) a "J(Ax)"
        }

        test "hessian of xᵀAx is A + Aᵀ and of Σ sin x is diag(−sin x)" {
            use g = new torch.Generator(6UL)
            for _ in 1 .. 5 do
                let a = randn g [| 4L; 4L |]
                let x = randn g [| 4L |]
                expectAll (Diff.hessian (fun x -> x.matmul(a.matmul(x))) x) (a + a.T) "H(xᵀAx)"
                expectAll (Diff.hessian (fun x -> x.sin().sum()) x) (torch.diag(-x.sin())) "H(Σ sin x)"
        }

        test "a function linear in x has zero Hessian; a constant has zero gradient" {
            let x = vec [| 1.0; -2.0; 3.0 |]
            expectAll (Diff.hessian (fun x -> (x * 2.0).sum()) x) (torch.zeros(3L, 3L, dtype = torch.float64)) "H(linear)"
            expectAll (Diff.grad (fun _ -> torch.tensor(5.0)) x) (torch.zeros(3L, dtype = torch.float64)) "∇const"
        }

        test "inputs are not mutated, results are detached, and it works under no_grad" {
            let x = vec [| 0.5; -1.5 |]
            let before = Interop.toDoubleArray x
            use _ = torch.no_grad ()
            let gradient = Diff.grad (fun x -> (x * x).sum()) x
            let hessian = Diff.hessian (fun x -> (x * x * x).sum()) x
            Expect.isFalse x.requires_grad "x does not start requiring grad"
            Expect.equal (Interop.toDoubleArray x) before "x keeps its values"
            Expect.isFalse gradient.requires_grad "the gradient is detached"
            Expect.isFalse hessian.requires_grad "the Hessian is detached"
            expectAll gradient (x * 2.0) "∇Σx² under no_grad"
            expectAll hessian (torch.diag(x * 6.0)) "H(Σx³) under no_grad"
            Expect.isFalse (torch.is_grad_enabled ()) "no_grad is restored afterwards"
        }

        test "non-scalar f for grad and non-vector x for jacobian are rejected" {
            Expect.throwsT<ArgumentException> (fun () -> Diff.grad (fun x -> x * 2.0) (vec [| 1.0; 2.0 |]) |> ignore) "grad needs a scalar f"
            Expect.throwsT<ArgumentException> (fun () -> Diff.jacobian id (torch.zeros(2L, 2L)) |> ignore) "jacobian needs a 1-D x"
        }
    ]
