module Research.Core.Tests.Program

open Expecto

[<Tests>]
let all = testList "Research.Core" [
    NativeTests.tests
    DiffTests.tests
    GaussianTests.tests
    ReparameterizationTests.tests
    EstimatorsTests.tests
    PcaTests.tests
    ProbabilisticPcaTests.tests
    IdxTests.tests
    LinearAeTests.tests
    TrainingTests.tests
    CheckpointTests.tests
    ReliabilityTests.tests
]

[<EntryPoint>]
let main argv = runTestsWithCLIArgs [ CLIArguments.Sequenced ] argv all
