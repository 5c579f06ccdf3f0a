module Research.Core.Tests.EstimatorsTests

open Expecto

let tests = testList "Estimators" []
