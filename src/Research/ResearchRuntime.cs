using System.Runtime.CompilerServices;

namespace Research;

/// <summary>The library's one native initialisation (<c>Research.Core.Native.ensureLoaded</c>): bit-reproducible
/// MKL settings, a loadable libLibTorchSharp.so on systems whose libstdc++ lacks GLIBCXX_3.4.32 (a patched copy
/// in a per-user cache folder), TorchSharp's CPU backend and, on AMD CPUs, MKL's feature-based kernels. It runs by
/// itself before the first use of any type of this library; call <see cref="Initialize"/> yourself only when your
/// code uses TorchSharp before it touches this library (building its own encoder and decoder modules, say).</summary>
/// <example><code>
/// ResearchRuntime.Initialize();               // first, before any TorchSharp call of your own
/// var encoder = new MyEncoder(784, 20);       // a TorchSharp module
/// </code></example>
public static class ResearchRuntime
{
    /// <summary>Runs the initialisation (once per process; later calls return at once). Throws
    /// <see cref="DllNotFoundException"/> naming the folders searched when TorchSharp's native library cannot be found
    /// or made loadable.</summary>
    public static void Initialize() => Core.Native.ensureLoaded();

    // Runs before any code of this assembly, so every public entry point has the native set-up behind it
    // (CA2255 warns libraries off module initialisers; this one is the documented, idempotent set-up).
    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "The library's documented native set-up")]
    internal static void OnAssemblyUse() => Initialize();
}
