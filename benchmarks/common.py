"""Helpers shared by the peer reference scripts: MNIST IDX loading, the result protocol, RSS readings.

Every script prints its measurements as one line `@result {json}` that scripts/Bench parses."""
import json
import os
import sys
import time

import numpy as np


def load_mnist(folder, split):
    """Pixels of a split as float32 [n, 784] in [0, 1] (the same scaling as Research.Core.Mnist.load).
    folder "synthetic": uniform noise of MNIST's shape, for timing on a machine without the data."""
    if folder == "synthetic":
        n = 60000 if split == "train" else 10000
        return np.random.default_rng(0 if split == "train" else 1).random((n, 784), dtype=np.float32)
    stem = "train" if split == "train" else "t10k"
    with open(os.path.join(folder, f"{stem}-images-idx3-ubyte"), "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[4:8], "big")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 784)
    return pixels.astype(np.float32) / np.float32(255.0)


def proc_status():
    """VmRSS and VmHWM of this process in MiB (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024.0
    return out


def emit(result):
    print("@result " + json.dumps(result), flush=True)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def torch_setup(threads):
    """Imports torch with `threads` intra-op threads and reports its build facts."""
    import torch
    torch.set_num_threads(threads)
    return torch
