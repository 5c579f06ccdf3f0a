"""scikit-learn reference for Research.Core.Pca: PCA(k) of the MNIST training images (float32 [n, 784], as
loaded) with every svd_solver this scikit-learn has. Each solver is warmed up on 2000 rows, then timed on
the full set. Reports seconds and the explained-variance ratios per solver."""
import argparse
import inspect
import time

import numpy as np
import sklearn
from sklearn.decomposition import PCA

from common import emit, load_mnist

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--threads", type=int, default=0, help="reported only: OMP_NUM_THREADS sets OpenBLAS's threads")
p.add_argument("--components", type=int, default=50)
p.add_argument("--solvers", default="full,randomized,arpack,covariance_eigh")
a = p.parse_args()
x = load_mnist(a.data, "train")[: a.rows]

# Which solvers this version accepts (covariance_eigh arrived in scikit-learn 1.5).
known = {"full", "randomized", "arpack", "auto"}
constraints = getattr(PCA, "_parameter_constraints", {}).get("svd_solver", [])
for c in constraints:
    options = getattr(c, "options", None)
    if options:
        known |= set(options)
results = {}
for solver in a.solvers.split(","):
    if solver not in known:
        results[solver] = {"available": False}
        continue
    PCA(a.components, svd_solver=solver, random_state=0).fit(x[:2000])
    t = time.perf_counter()
    fit = PCA(a.components, svd_solver=solver, random_state=0).fit(x)
    s = time.perf_counter() - t
    results[solver] = {"available": True, "seconds": s,
                       "evr": [float(v) for v in fit.explained_variance_ratio_]}
emit({"threads": a.threads, "sklearn": sklearn.__version__, "numpy": np.__version__, "rows": x.shape[0], "solvers": results})
