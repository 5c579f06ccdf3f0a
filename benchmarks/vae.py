"""PyTorch reference for Research.Core.Vae at the library's defaults (see src/Research.Core/Models/Vae.fs):
encoder 784-400-40 (ReLU; the last layer emits μ and log σ² together), decoder 20-400-784 (ReLU, logits),
Bernoulli likelihood (BCE with logits, summed over pixels), analytic KL, L = 1, loss = mean per example of
−ELBO, Adam 1e-3, batch 128, data preloaded as one tensor and shuffled by a randperm index each epoch.

--mode epoch: time one training epoch after an untimed pass of --warmup-steps minibatches.
--mode run:   train --epochs epochs, report RSS after each, the test −ELBO, and the time of the
              importance-weighted log-likelihood with --iw-samples samples on the first 1000 test images.
--mode profile: the training step taken apart (select, forward, item, zero_grad, backward, step),
              each phase timed over --steps minibatches after 200 warm-up ones, in milliseconds per step."""
import argparse
import math
import time

from common import emit, load_mnist, log, log_weights, train_epoch, test_loss as common_test_loss, proc_status, torch_setup

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--mode", choices=["epoch", "run", "profile"], default="epoch")
p.add_argument("--steps", type=int, default=200)
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--warmup-steps", type=int, default=20)
p.add_argument("--iw-samples", type=int, default=5000)
p.add_argument("--iw-rows", type=int, default=1000)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch = torch_setup(a.threads)
F = torch.nn.functional
nn = torch.nn

torch.manual_seed(a.seed)
train = torch.from_numpy(load_mnist(a.data, "train")[: a.rows].copy())
test = torch.from_numpy(load_mnist(a.data, "test").copy())
P, H, D, B = 784, 400, 20, 128


class Vae(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(P, H), nn.ReLU(), nn.Linear(H, 2 * D))
        self.decoder = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, P))

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, -1)
        return mu, logvar

    def loss(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(z)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(torch.expm1(logvar) - logvar + mu * mu)
        return (bce + kl) / x.shape[0]


model = Vae()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def epoch(data, steps=None):
    return train_epoch(torch, model.loss, opt, data, B, steps)


def test_loss(data):
    return common_test_loss(torch, model.loss, data)


@torch.no_grad()
def importance_weighted(x, k, rows=100, budget=1 << 23):
    """Mean over rows of log (1/K) Σ_k p(x, z_k) / q(z_k|x): the same chunking as Research.Core.Vae."""
    chunk = max(1, min(k, budget // (rows * P)))
    total = 0.0
    for s in range(0, x.shape[0], rows):
        xb = x[s:s + rows]
        mu, logvar = model.encode(xb)
        logws = []
        for start in range(0, k, chunk):
            logws.append(log_weights(torch, model.decoder, xb, mu, logvar, min(chunk, k - start)))
        total += (torch.logsumexp(torch.cat(logws, 0), 0) - math.log(k)).sum().item()
    return total / x.shape[0]


def profile():
    names = ["select", "forward", "item", "zero_grad", "backward", "step", "accumulate"]
    acc = [0.0] * len(names)
    warm, n = 200, train.shape[0]
    order, start = torch.randperm(n), 0
    loss_sum = torch.zeros(1, dtype=torch.float64)
    for s in range(warm + a.steps):
        if s == warm:
            t_all = time.perf_counter()
        if start + B > n:
            order, start = torch.randperm(n), 0
        marks = [time.perf_counter()]
        x = train[order[start:start + B]]
        marks.append(time.perf_counter())
        loss = model.loss(x)
        marks.append(time.perf_counter())
        if not math.isfinite(loss.item()):
            raise RuntimeError("diverged")
        marks.append(time.perf_counter())
        opt.zero_grad()
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        opt.step()
        marks.append(time.perf_counter())
        loss_sum += loss.detach().double() * B
        marks.append(time.perf_counter())
        if s >= warm:
            for i in range(len(names)):
                acc[i] += marks[i + 1] - marks[i]
        start += B
    step_ms = (time.perf_counter() - t_all) / a.steps * 1000
    emit({"phases_ms": {k: v / a.steps * 1000 for k, v in zip(names, acc)}, "step_ms": step_ms,
          "steps": a.steps, "threads": torch.get_num_threads()})


if a.mode == "profile":
    profile()
elif a.mode == "epoch":
    t = time.perf_counter()
    epoch(train, a.warmup_steps)
    warmup_s = time.perf_counter() - t
    t = time.perf_counter()
    loss = epoch(train)
    emit({"epoch_s": time.perf_counter() - t, "warmup_s": warmup_s, "train_loss": loss, "rows": train.shape[0],
          "threads": torch.get_num_threads()})
else:
    rss, rss_before = [], proc_status()["VmRSS"]
    t0 = time.perf_counter()
    for e in range(1, a.epochs + 1):
        loss = epoch(train)
        rss.append(proc_status()["VmRSS"])
        log(f"PyTorch VAE epoch {e}: train loss {loss:.4f} ({time.perf_counter() - t0:.1f} s)")
    train_s = time.perf_counter() - t0
    hwm = proc_status()["VmHWM"]
    tl = test_loss(test)
    t = time.perf_counter()
    ll = importance_weighted(test[: a.iw_rows], a.iw_samples)
    iw_s = time.perf_counter() - t
    emit({"epochs": a.epochs, "train_s": train_s, "rss_before_mib": rss_before, "rss_mib": rss, "hwm_train_mib": hwm,
          "hwm_mib": proc_status()["VmHWM"], "test_neg_elbo": tl, "iw_s": iw_s, "iw_neg_ll": -ll,
          "iw_samples": a.iw_samples, "iw_rows": a.iw_rows, "threads": torch.get_num_threads()})

