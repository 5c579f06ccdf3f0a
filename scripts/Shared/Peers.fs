/// The peers: Debian's python3-torch and python3-sklearn, installed on demand, run against OpenBLAS.
/// Shared by scripts/Bench (the bench) and scripts/Reproduce (the IWAE table's PyTorch reference run).
///
/// Debian's python3-torch 1.13 is built with BLAS_INFO=generic: libtorch_cpu links libblas.so.3 and
/// liblapack.so.3, which the alternatives system points at the reference (unoptimised) BLAS unless an
/// optimised one is installed system-wide. To give the peer its best configuration without touching the
/// system, Debian's libopenblas0-openmp is unpacked (apt-get download, dpkg -x) into a private folder whose
/// openblas-openmp/ directory provides libblas.so.3 and liblapack.so.3, and the peer processes get that
/// folder first on LD_LIBRARY_PATH. numpy and scipy (scikit-learn) link the same sonames and use it too.
module Scripts.Peers

open System
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes

/// Timestamped progress on stderr (stdout carries the results).
let private log (s: string) = eprintfn "[%s] %s" (DateTime.Now.ToString "HH:mm:ss") s

/// A child's result line: `@result {json}` (benchmarks/common.py's emit and the bench workers print it).
let ResultPrefix = "@result "

/// Runs a child process with `env` (a null value removes that variable), passing every other line of its
/// output to `echo`, and returns its exit code and its `@result` object (None when it printed none). A child
/// still running after `timeout` is killed.
let runForResult (echo: string -> unit) (workDir: string) (env: (string * string) list) (timeout: TimeSpan) (program: string) (args: string list) =
    let psi = ProcessStartInfo(program, args, WorkingDirectory = workDir, UseShellExecute = false,
                               RedirectStandardOutput = true, RedirectStandardError = true)
    for k, v in env do
        if isNull v then psi.Environment.Remove k |> ignore else psi.Environment[k] <- v
    use p = new Process(StartInfo = psi)
    let mutable result = None
    p.OutputDataReceived.Add(fun e ->
        if not (isNull e.Data) then
            if e.Data.StartsWith ResultPrefix then result <- Some(JsonNode.Parse(e.Data.Substring ResultPrefix.Length).AsObject())
            else echo e.Data)
    p.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then echo e.Data)
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    if not (p.WaitForExit timeout) then p.Kill true
    p.WaitForExit()
    p.ExitCode, result

/// Debian's interpreter, not whatever `python3` is first on PATH (pyenv shims lack the Debian packages).
let Python = "/usr/bin/python3"

/// Runs a program and returns (exit code, stdout, stderr).
let capture (workDir: string) (env: (string * string) list) (program: string) (args: string list) =
    let psi = ProcessStartInfo(program, args, WorkingDirectory = workDir, UseShellExecute = false,
                               RedirectStandardOutput = true, RedirectStandardError = true)
    for k, v in env do psi.Environment[k] <- v
    use p = Process.Start psi
    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out, err.Result

let private installed (package: string) =
    let code, out, _ = capture "/" [] "dpkg-query" [ "-W"; "-f=${Status}"; package ]
    code = 0 && out.Contains "install ok installed"

let private apt = [ "DEBIAN_FRONTEND", "noninteractive" ]

/// Installs the peer packages with apt-get when dpkg does not list them (we run as root; no sudo).
let ensurePackages () =
    let missing = [ "python3-torch"; "python3-sklearn" ] |> List.filter (installed >> not)
    if not missing.IsEmpty then
        log $"""installing {String.Join(" ", missing)} with apt-get (this takes a few minutes once)"""
        let install () =
            capture "/" apt "apt-get" ([ "install"; "-y"; "--no-install-recommends"; "-o"; "DPkg::Lock::Timeout=600" ] @ missing)
        let code, _, _ = install ()
        if code <> 0 then
            // Empty or stale package lists are the usual cause on a fresh container.
            capture "/" apt "apt-get" [ "update"; "-o"; "DPkg::Lock::Timeout=600" ] |> ignore
            let code, out, err = install ()
            if code <> 0 then failwithf "apt-get install %A failed (exit %d):\n%s\n%s" missing code out err

/// The folder holding libblas.so.3 / liblapack.so.3 of an unpacked libopenblas0-openmp under `folder`,
/// downloaded and unpacked there first when absent.
let ensureOpenBlas (folder: string) =
    let find () =
        if Directory.Exists folder then
            Directory.GetFiles(folder, "libblas.so.3", SearchOption.AllDirectories)
            |> Array.tryFind (fun p -> Path.GetFileName(Path.GetDirectoryName p) = "openblas-openmp")
            |> Option.map Path.GetDirectoryName
        else None
    match find () with
    | Some dir -> dir
    | None ->
        log $"downloading Debian's libopenblas0-openmp into {folder}"
        let tmp = Path.Combine(Path.GetTempPath(), $"bench-openblas-{Guid.NewGuid():N}")
        Directory.CreateDirectory tmp |> ignore
        try
            let code, out, err = capture tmp apt "apt-get" [ "download"; "libopenblas0-openmp" ]
            if code <> 0 then failwithf "apt-get download libopenblas0-openmp failed (exit %d):\n%s\n%s" code out err
            let deb = Directory.GetFiles(tmp, "libopenblas0-openmp*.deb") |> Array.exactlyOne
            Directory.CreateDirectory folder |> ignore
            let code, out, err = capture tmp [] "dpkg" [ "-x"; deb; folder ]
            if code <> 0 then failwithf "dpkg -x %s failed (exit %d):\n%s\n%s" deb code out err
        finally
            Directory.Delete(tmp, true)
        // Its dependencies libgfortran5 and libgomp1 come with python3-torch / python3-scipy.
        match find () with
        | Some dir -> dir
        | None -> failwithf "libopenblas0-openmp unpacked into %s has no openblas-openmp/libblas.so.3" folder

/// The environment of a peer process: `threads` OpenMP/OpenBLAS threads and, when given, the OpenBLAS
/// folder first on LD_LIBRARY_PATH.
let env (blas: string option) (threads: int) =
    [ yield "OMP_NUM_THREADS", string threads
      yield "OPENBLAS_NUM_THREADS", string threads
      yield "PYTHONNOUSERSITE", "1"
      match blas with
      | Some dir ->
          let old = Environment.GetEnvironmentVariable "LD_LIBRARY_PATH"
          yield "LD_LIBRARY_PATH", (if String.IsNullOrEmpty old then dir else dir + ":" + old)
      | None -> () ]

/// The BLAS / LAPACK shared objects python3-torch's extension resolves under `env` (ldd's view).
let torchBlasLinkage (env: (string * string) list) =
    let code, out, _ = capture "/" env Python [ "-c"; "import torch; print(torch._C.__file__)" ]
    if code <> 0 then [ "python3-torch does not import" ]
    else
        let _, ldd, _ = capture "/" env "ldd" [ out.Trim() ]
        ldd.Split('\n')
        |> Array.map (fun l -> l.Trim())
        |> Array.filter (fun l -> l.StartsWith "libblas" || l.StartsWith "liblapack" || l.StartsWith "libopenblas")
        |> Array.map (fun l -> let i = l.IndexOf(" (0x") in if i > 0 then l.Substring(0, i) else l)
        |> Array.toList
