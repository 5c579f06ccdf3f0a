module Research.Core.Tests.ReparameterizationTests

open Expecto

let tests = testList "Reparameterization" []
