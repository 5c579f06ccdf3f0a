"""PyTorch reference for Research.Core's convolutional VAE (VaeConfig.Convolutional = 1×28×28, HiddenSizes
[32, 64], latent 20; see src/Research.Core/Layers/ConvNet.fs). The same layers in the same order:
encoder  rows → 1×28×28 → Conv(1→32, k4 s2 p1) ReLU → Conv(32→64, k4 s2 p1) ReLU → flatten → Linear(3136→40)
decoder  Linear(20→3136) ReLU → 64×7×7 → ConvT(64→32, k4 s2 p1) ReLU → ConvT(32→1, k4 s2 p1) → flatten (logits)
ConvNet puts the activation after the decoder's linear layer too, so this does. PyTorch's default
initialisation (weights and biases ~ U(±1/√fan_in)) is the family of Mlp.Uniform, the library's default.
Bernoulli likelihood on grey levels (BCE with logits, summed over pixels), analytic KL, L = 1, loss = mean
per example of −ELBO, Adam 1e-3, batch 128, a randperm order each epoch: the loop of vae.py.

--mode epoch: time one pass over --rows training images after an untimed pass of --warmup-steps minibatches.
--mode run:   train --epochs epochs on --rows images, then the test −ELBO (one sample, as Vae.Elbo).
--mode profile: each layer alone on a minibatch of 128, forward without gradients and forward + backward of
              the output's sum, median ms of --steps after 3 warm-up ones (Bench worker conv-profile)."""
import argparse
import statistics
import time
from collections import OrderedDict

from common import emit, load_mnist, log, train_epoch, test_loss as common_test_loss, torch_setup

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--mode", choices=["epoch", "run", "profile"], default="epoch")
p.add_argument("--steps", type=int, default=20)
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--warmup-steps", type=int, default=20)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch = torch_setup(a.threads)
F = torch.nn.functional
nn = torch.nn

torch.manual_seed(a.seed)
train = torch.from_numpy(load_mnist(a.data, "train")[: a.rows].copy())
test = torch.from_numpy(load_mnist(a.data, "test").copy())
D, B = 20, 128


class ConvVae(nn.Module):
    def __init__(self):
        super().__init__()
        # The layer names of ConvNet.encoder and ConvNet.decoder, so that the profiles line up.
        self.encoder = nn.Sequential(OrderedDict([
            ("image", nn.Unflatten(1, (1, 28, 28))),
            ("conv0", nn.Conv2d(1, 32, 4, stride=2, padding=1)), ("act0", nn.ReLU()),
            ("conv1", nn.Conv2d(32, 64, 4, stride=2, padding=1)), ("act1", nn.ReLU()),
            ("flatten", nn.Flatten()), ("linear", nn.Linear(64 * 7 * 7, 2 * D))]))
        self.decoder = nn.Sequential(OrderedDict([
            ("linear", nn.Linear(D, 64 * 7 * 7)), ("act", nn.ReLU()), ("map", nn.Unflatten(1, (64, 7, 7))),
            ("deconv0", nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)), ("act0", nn.ReLU()),
            ("deconv1", nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)), ("flatten", nn.Flatten())]))

    def loss(self, x):
        mu, logvar = self.encoder(x).chunk(2, -1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(z)
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * torch.sum(torch.expm1(logvar) - logvar + mu * mu)
        return (bce + kl) / x.shape[0]


model = ConvVae()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def epoch(data, steps=None):
    return train_epoch(torch, model.loss, opt, data, B, steps)


def test_loss(data):
    return common_test_loss(torch, model.loss, data)


def median_ms(f):
    for _ in range(3):
        f()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def profile():
    layers = {}
    for prefix, net, h, needs_grad in [("encoder", model.encoder, train[:B], False),
                                       ("decoder", model.decoder, torch.randn(B, D), True)]:
        for name, m in net.named_children():
            inp = h
            with torch.no_grad():
                forward = median_ms(lambda: m(inp))
            has_parameters = any(True for _ in m.parameters())
            layers[f"{prefix}.{name}"] = {"forward": forward}
            # A layer with nothing to differentiate (the encoder's reshape of the images) has no backward pass.
            if needs_grad or has_parameters:
                g = inp.detach().requires_grad_(needs_grad)
                layers[f"{prefix}.{name}"]["forward_backward"] = median_ms(lambda: m(g).sum().backward())
            with torch.no_grad():
                h = m(inp)
            needs_grad = needs_grad or has_parameters
    emit({"layers_ms": layers, "steps": a.steps, "threads": torch.get_num_threads()})


if a.mode == "profile":
    profile()
elif a.mode == "epoch":
    t = time.perf_counter()
    epoch(train, a.warmup_steps)
    warmup_s = time.perf_counter() - t
    t = time.perf_counter()
    loss = epoch(train)
    emit({"epoch_s": time.perf_counter() - t, "warmup_s": warmup_s, "warmup_steps": a.warmup_steps, "train_loss": loss, "rows": train.shape[0],
          "threads": torch.get_num_threads()})
else:
    t0 = time.perf_counter()
    for e in range(1, a.epochs + 1):
        loss = epoch(train)
        log(f"PyTorch conv VAE epoch {e}: train loss {loss:.4f} ({time.perf_counter() - t0:.1f} s)")
    train_s = time.perf_counter() - t0
    emit({"epochs": a.epochs, "train_s": train_s, "test_neg_elbo": test_loss(test), "rows": train.shape[0],
          "threads": torch.get_num_threads()})
