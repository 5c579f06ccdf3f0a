module Research.Core.Tests.IdxTests

open Expecto

let tests = testList "Idx" []
