module Research.Core.Tests.GaussianTests

open Expecto

let tests = testList "Gaussian" []
