module Research.Core.Tests.PcaTests

open Expecto

let tests = testList "Pca" []
