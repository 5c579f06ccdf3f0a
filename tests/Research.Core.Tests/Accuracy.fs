/// Named tolerances, so no test carries a magic epsilon.
module Research.Core.Tests.Accuracy

open Expecto

/// float32 arithmetic on O(1) values.
let single = { absolute = 1e-5; relative = 1e-5 }
/// float32 results of long reductions (sums over thousands of terms, eigen-solvers).
let reduced = { absolute = 1e-4; relative = 1e-4 }
/// float64 arithmetic.
let double = { absolute = 1e-10; relative = 1e-10 }
/// A stochastic optimiser run to near convergence: within 2% of the optimum.
let training = { absolute = 1e-6; relative = 2e-2 }
