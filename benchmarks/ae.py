"""PyTorch reference for Research.Core.Autoencoder's deep AE: encoder 784-256-64-20 and decoder
20-64-256-784 with ReLU between layers and a sigmoid output, loss = MSE per element (mean), Adam 1e-3,
batch 128, data preloaded as one tensor and shuffled by a randperm index each epoch. Times one epoch
after an untimed pass of --warmup-steps minibatches."""
import argparse
import time

from common import emit, load_mnist, torch_setup, train_epoch

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--warmup-steps", type=int, default=20)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch = torch_setup(a.threads)
nn = torch.nn
torch.manual_seed(a.seed)
train = torch.from_numpy(load_mnist(a.data, "train")[: a.rows].copy())
B = 128
encoder = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 20))
decoder = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 784))
params = list(encoder.parameters()) + list(decoder.parameters())
opt = torch.optim.Adam(params, lr=1e-3)


def epoch(data, steps=None):
    return train_epoch(torch, lambda x: nn.functional.mse_loss(torch.sigmoid(decoder(encoder(x))), x), opt, data, B, steps)


t = time.perf_counter()
epoch(train, a.warmup_steps)
warmup_s = time.perf_counter() - t
t = time.perf_counter()
loss = epoch(train)
emit({"epoch_s": time.perf_counter() - t, "warmup_s": warmup_s, "train_loss": loss, "rows": train.shape[0],
      "threads": torch.get_num_threads()})
