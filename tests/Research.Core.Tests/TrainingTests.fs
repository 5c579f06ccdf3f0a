module Research.Core.Tests.TrainingTests

open Expecto

let tests = testList "Training" []
