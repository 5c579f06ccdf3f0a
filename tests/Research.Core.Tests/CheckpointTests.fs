module Research.Core.Tests.CheckpointTests

open Expecto

let tests = testList "Checkpoint" []
