module Research.Core.Tests.DiffTests

open Expecto

let tests = testList "Diff" []
