"""PyTorch reference run of the IWAE table (scripts/Reproduce/IwaeTable.fs): the model of iwae_model.py trained
as Research trains it there (Adam 1e-3, minibatches of 20 of a randperm order, each binarised afresh, for
--epochs passes over the training images; K = --samples, K = 1 being the ELBO with one sample), then scored on
the fixed binarised test set that Research wrote (--test, a .npy of 0/1 float32 rows): the importance-sampling
log-likelihood with --eval-samples per row ± its standard error, the mean effective sample size, and the
active units. Reports the training seconds per epoch."""
import argparse
import time

import numpy as np

import iwae_model
from common import emit, load_mnist, log, torch_setup, train_epoch

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--test", required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--samples", type=int, required=True)
p.add_argument("--eval-samples", type=int, default=5000)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch = torch_setup(a.threads)

torch.manual_seed(a.seed)
train = torch.from_numpy(load_mnist(a.data, "train")[: a.rows].copy())
test = torch.from_numpy(np.load(a.test).astype(np.float32))
model = iwae_model.build(torch)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

train_s = 0.0
for e in range(1, a.epochs + 1):
    t = time.perf_counter()
    loss = train_epoch(torch, lambda x: model.loss(x, a.samples), opt, train, 20, binarize=True)
    train_s += time.perf_counter() - t
    log(f"PyTorch K = {a.samples} epoch {e}: train loss {loss:.2f} ({train_s / e:.1f} s/epoch)")
t = time.perf_counter()
mean, se, ess = iwae_model.estimate_log_likelihood(torch, model, test, a.eval_samples)
eval_s = time.perf_counter() - t
emit({"samples": a.samples, "epochs": a.epochs, "rows": train.shape[0], "test_rows": test.shape[0], "train_loss": loss,
      "seconds_per_epoch": train_s / a.epochs, "eval_samples": a.eval_samples, "log_likelihood": mean, "standard_error": se,
      "effective_sample_size": ess, "active_units": iwae_model.active_units(torch, model, test), "eval_s": eval_s,
      "threads": torch.get_num_threads()})
