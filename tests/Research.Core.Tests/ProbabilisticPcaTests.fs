module Research.Core.Tests.ProbabilisticPcaTests

open Expecto

let tests = testList "ProbabilisticPca" []
