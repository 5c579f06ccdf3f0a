"""The peer's sgemm rate: best of `--reps` products of two n×n float32 matrices with torch.mm.

Run it with and without LD_LIBRARY_PATH pointing at OpenBLAS to see which BLAS python3-torch uses."""
import argparse
import time

from common import emit, torch_setup

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, required=True)
p.add_argument("--n", type=int, default=2048)
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()
torch = torch_setup(a.threads)
g = torch.Generator().manual_seed(0)
x = torch.randn(a.n, a.n, generator=g)
y = torch.randn(a.n, a.n, generator=g)
torch.mm(x, y)  # warm-up: thread pool, BLAS buffers
best = float("inf")
for _ in range(a.reps):
    t = time.perf_counter()
    torch.mm(x, y)
    best = min(best, time.perf_counter() - t)
emit({"n": a.n, "best_s": best, "gflops": 2.0 * a.n ** 3 / best / 1e9, "threads": torch.get_num_threads(),
      "torch": torch.__version__})
