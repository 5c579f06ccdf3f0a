"""PyTorch reference for Research.Core's IWAE (Objective = ImportanceWeighted, Samples = K; see
Estimators.iwae): Burda et al.'s MNIST model 784-200-200-50 with tanh hidden units (the encoder's last layer
emits μ and log σ² together), a Bernoulli decoder (logits), PyTorch's default initialisation (the family of
Mlp.Uniform). The loss per minibatch is −mean over rows of log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) with the
K samples reparameterised in one draw [K, B, 50] and log q computed from z − μ, as Gaussian.logDensity does.
Adam 1e-3, minibatches of 20 of a randperm order, each binarised afresh with torch.bernoulli (dynamic
binarisation, TrainingConfig.DynamicBinarization).

Times one pass over --rows training images after an untimed pass of --warmup-steps minibatches."""
import argparse
import math
import time

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
F = torch.nn.functional
nn = torch.nn

torch.manual_seed(a.seed)
train = torch.from_numpy(load_mnist(a.data, "train")[: a.rows].copy())
P, H, D, B, K = 784, 200, 50, 20, a.samples
LOG2PI = math.log(2 * math.pi)


class Iwae(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(P, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, 2 * D))
        self.decoder = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, P))

    def loss(self, x):
        mu, logvar = self.encoder(x).chunk(2, -1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((K,) + mu.shape)
        logits = self.decoder(z)
        logpx = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        logpz = (-0.5 * (z * z + LOG2PI)).sum(-1)
        d = z - mu
        logq = (-0.5 * (d * d * torch.exp(-logvar) + logvar + LOG2PI)).sum(-1)
        return -(torch.logsumexp(logpx + logpz - logq, 0) - math.log(K)).mean()


model = Iwae()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def epoch(data, steps=None):
    # Dynamic binarisation: every minibatch resampled as Bernoulli(pixel).
    return train_epoch(torch, model.loss, opt, data, B, steps, binarize=True)


t = time.perf_counter()
epoch(train, a.warmup_steps)
warmup_s = time.perf_counter() - t
t = time.perf_counter()
loss = epoch(train)
emit({"epoch_s": time.perf_counter() - t, "warmup_s": warmup_s, "warmup_steps": a.warmup_steps, "train_loss": loss, "rows": train.shape[0],
      "batch": B, "samples": K, "threads": torch.get_num_threads()})
