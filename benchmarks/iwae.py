"""PyTorch reference for Research.Core's IWAE epoch: the model of iwae_model.py, the loss per minibatch
−mean over rows of log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x). Adam 1e-3, minibatches of 20 of a randperm
order, each binarised afresh with torch.bernoulli (dynamic binarisation, TrainingConfig.DynamicBinarization).

Times one pass over --rows training images after an untimed pass of --warmup-steps minibatches."""
import argparse
import time

import iwae_model
from common import emit, load_mnist, torch_setup, train_epoch

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--warmup-steps", type=int, default=20)
p.add_argument("--samples", type=int, default=5)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch = torch_setup(a.threads)

torch.manual_seed(a.seed)
train = torch.from_numpy(load_mnist(a.data, "train")[: a.rows].copy())
B, K = 20, a.samples
model = iwae_model.build(torch)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def epoch(data, steps=None):
    # Dynamic binarisation: every minibatch resampled as Bernoulli(pixel).
    return train_epoch(torch, lambda x: model.loss(x, K), opt, data, B, steps, binarize=True)


t = time.perf_counter()
epoch(train, a.warmup_steps)
warmup_s = time.perf_counter() - t
t = time.perf_counter()
loss = epoch(train)
emit({"epoch_s": time.perf_counter() - t, "warmup_s": warmup_s, "warmup_steps": a.warmup_steps, "train_loss": loss, "rows": train.shape[0],
      "batch": B, "samples": K, "threads": torch.get_num_threads()})
