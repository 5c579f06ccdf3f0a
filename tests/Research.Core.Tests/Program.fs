module Research.Core.Tests.Program

open Expecto

[<Tests>]
let all = testList "Research.Core" [
    NativeTests.tests
    LibTorchLoaderTests.tests
    DiffTests.tests
    GaussianTests.tests
    ReparameterizationTests.tests
    EstimatorsTests.tests
    IwaeTests.tests
    HmcTests.tests
    AisTests.tests
    MarginalLikelihoodTests.tests
    PcaTests.tests
    ProbabilisticPcaTests.tests
    IdxTests.tests
    MatFileTests.tests
    LinearAeTests.tests
    InitialisationTests.tests
    LinearVaeTests.tests
    OptimisersTests.tests
    VaeBackpropTests.tests
    TrainingTests.tests
    TensorBoardLogTests.tests
    CheckpointTests.tests
    StateDictFileTests.tests
    NpyTests.tests
    CsvTests.tests
    PcaFileTests.tests
    WakeSleepTests.tests
    McemTests.tests
    ReliabilityTests.tests
    DeterminismTests.tests
    ResumeKillTests.tests
    ResumeWithinEpochTests.tests
    SoakTests.tests
    ScalarLifetimeTests.tests
]

/// Tests too long for every run (minutes each): `--long` runs them instead of `all`.
let long = testList "Research.Core" [ SoakTests.longTests; LinearVaeTests.longTests ]

[<EntryPoint>]
let main argv =
    match argv with
    // The child mode of the cross-process determinism test (DeterminismTests).
    | [| "--resume-child"; checkpoint; out; every |] -> ResumeKillTests.child checkpoint out (int every)
    | [| "--determinism-child"; out |] -> DeterminismTests.child out None
    | [| "--determinism-child"; out; "--threads"; n |] -> DeterminismTests.child out (Some(int n))
    | _ when Array.contains "--long" argv ->
        runTestsWithCLIArgs [ CLIArguments.Sequenced ] (argv |> Array.filter ((<>) "--long")) long
    | _ -> runTestsWithCLIArgs [ CLIArguments.Sequenced ] argv all
