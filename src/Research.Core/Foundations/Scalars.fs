/// libtorch Scalars that live as long as the native calls that read them. TorchSharp 0.107 makes a temporary
/// Scalar for every number in tensor arithmetic (`t * 0.5`, an implicit conversion, `ToScalar ()` in an
/// argument, and inside some of its own members, such as `square ()` and `add_ t`) and passes only its handle
/// to libtorch: nothing references the .NET object during the call, so a garbage collection started by another
/// thread can finalize it and free the value while libtorch reads it. The paper-budget run, two models training
/// on two threads, failed so ("Unknown scalar type"); a freed value could as well be read as another number.
/// The core takes its Scalars from here instead: constants rooted for the life of the process, and `ofFloat` /
/// `ofInt` for values known at run time, bound with `use` (which keeps them alive to the end of their scope)
/// around the calls that read them. tests/Research.Core.Tests/ScalarLifetimeTests reads the compiled core to
/// hold every other file to this.
module internal Research.Core.Scalars

open System.Runtime.CompilerServices
open TorchSharp

/// A Scalar for a value known at run time: bind it with `use` around the calls that read it. Loads libtorch
/// first, as the constants below may be the process's first native call.
// Not inlined, so that the compiled core makes Scalars only here (ScalarLifetimeTests reads it).
[<MethodImpl(MethodImplOptions.NoInlining)>]
let ofFloat (value: float) =
    Native.ensureLoaded ()
    value.ToScalar()

/// A Scalar for an integer known at run time: bind it with `use` around the calls that read it.
// Not inlined, so that the compiled core makes Scalars only here (ScalarLifetimeTests reads it).
[<MethodImpl(MethodImplOptions.NoInlining)>]
let ofInt (value: int64) =
    Native.ensureLoaded ()
    value.ToScalar()

/// A float32 Scalar, for comparisons with float32 data that must not round through float64.
// Not inlined, so that the compiled core makes Scalars only here (ScalarLifetimeTests reads it).
[<MethodImpl(MethodImplOptions.NoInlining)>]
let ofFloat32 (value: float32) =
    Native.ensureLoaded ()
    value.ToScalar()

// The constants of the core's formulas, rooted in static fields for the life of the process.
let zero = ofFloat 0.0
let half = ofFloat 0.5
let minusHalf = ofFloat -0.5
let one = ofFloat 1.0
let minusOne = ofFloat -1.0
let two = ofFloat 2.0

/// Tensor sums with libtorch's α = 1 rooted: TorchSharp's own `+` (Tensor.add) makes α as a temporary Scalar
/// (see above); its subtraction takes no α and is safe as it is. Open this where the core adds tensors.
module Operators =
    /// a + b for tensors (a.add(b, α = 1)), at the precedence of `+`.
    let inline (+.) (a: torch.Tensor) (b: torch.Tensor) = a.add(b, one)

    /// a + c for a tensor and a Scalar (a.add(c, α = 1)), written `plus c a` or `a |> plus c`.
    let inline plus (c: Scalar) (a: torch.Tensor) = a.add(c, one)
