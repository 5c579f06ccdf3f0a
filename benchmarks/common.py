"""Helpers shared by the peer reference scripts: MNIST IDX loading, the result protocol, RSS readings, the
importance weights of a Bernoulli VAE.

Every script prints its measurements as one line `@result {json}` that scripts/Bench parses."""
import json
import math
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


def train_epoch(torch, loss_of, opt, data, batch, steps=None, binarize=False):
    """One pass over `data` in shuffled minibatches of `batch` (only the first `steps` of them when given), each
    resampled as Bernoulli(pixel) when `binarize`: one Adam step on `loss_of(x)` per minibatch. Returns the mean
    loss per example over the minibatches taken."""
    n = data.shape[0]
    order = torch.randperm(n)
    total, count = 0.0, 0
    for i, start in enumerate(range(0, n, batch)):
        if steps is not None and i >= steps:
            break
        x = data[order[start:start + batch]]
        if binarize:
            x = torch.bernoulli(x)
        loss = loss_of(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * x.shape[0]
        count += x.shape[0]
    return total / count


def test_loss(torch, loss_of, data, chunk=1000):
    """The mean per-example `loss_of` over `data`, in chunks, without gradients."""
    with torch.no_grad():
        return sum(loss_of(data[s:s + chunk]).item() * min(chunk, data.shape[0] - s)
                   for s in range(0, data.shape[0], chunk)) / data.shape[0]


LOG2PI = math.log(2 * math.pi)


def log_weights(torch, decoder, x, mu, logvar, k):
    """log p(x|z_k) + log p(z_k) − log q(z_k|x) [k, B] for a Bernoulli decoder (logits) and q = N(mu, e^logvar):
    the k samples reparameterised in one draw, log q computed from z − μ, as Research.Core's Gaussian.logDensity does."""
    F = torch.nn.functional
    z = mu + torch.exp(0.5 * logvar) * torch.randn((k,) + mu.shape)
    logits = decoder(z)
    logpx = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    logpz = (-0.5 * (z * z + LOG2PI)).sum(-1)
    d = z - mu
    logq = (-0.5 * (d * d * torch.exp(-logvar) + logvar + LOG2PI)).sum(-1)
    return logpx + logpz - logq
