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

/// Monte-Carlo comparisons accept |estimate − truth| up to this many standard errors (two-sided
/// probability of a false alarm ≈ 6·10⁻⁵ per comparison).
let standardErrors = 4.0

/// FsCheck settings for the property tests: a fixed replay seed, so that the suite, which includes
/// Monte-Carlo comparisons with a small false-alarm rate, gives the same verdict on every run.
let properties maxTest =
    { FsCheckConfig.defaultConfig with
        maxTest = maxTest
        replay = Some(20131220UL, 0x9E3779B97F4A7C15UL, None) }
