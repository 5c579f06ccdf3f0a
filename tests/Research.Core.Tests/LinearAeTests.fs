module Research.Core.Tests.LinearAeTests

open Expecto

let tests = testList "LinearAe" []
