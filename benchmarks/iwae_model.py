"""Burda et al.'s one-stochastic-layer MNIST model as Research.Core builds it for the IWAE (Objective =
ImportanceWeighted, Samples = K; see Estimators.iwae): 784-200-200-50 with tanh hidden units, the encoder's
last layer emitting μ and log σ² together, a Bernoulli decoder (logits), PyTorch's default initialisation
(the family of Mlp.Uniform). Shared by iwae.py (the epoch timing) and iwae_table.py (the IWAE table's
reference run)."""
import math

from common import log_weights as common_log_weights

P, H, D = 784, 200, 50


def build(torch):
    nn = torch.nn

    class Iwae(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(P, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, 2 * D))
            self.decoder = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, P))

        def log_weights(self, x, k):
            """log p(x|z_k) + log p(z_k) − log q(z_k|x) [k, B] (common.log_weights)."""
            mu, logvar = self.encoder(x).chunk(2, -1)
            return common_log_weights(torch, self.decoder, x, mu, logvar, k)

        def loss(self, x, k):
            """The negative IWAE bound −mean over rows of log (1/k) Σ_k w_k (k = 1: the negative ELBO)."""
            return -(torch.logsumexp(self.log_weights(x, k), 0) - math.log(k)).mean()

    return Iwae()


def estimate_log_likelihood(torch, model, x, k, rows=10):
    """Importance sampling with k samples from q per row, as Research's EstimateLogLikelihood: the mean over
    rows of log (1/k) Σ w, its standard error over rows, and the mean effective sample size (Σw)²/Σw²."""
    per_row, ess = [], []
    with torch.no_grad():
        for s in range(0, x.shape[0], rows):
            lw = model.log_weights(x[s:s + rows], k).double()
            lse = torch.logsumexp(lw, 0)
            per_row.append(lse - math.log(k))
            ess.append(torch.exp(2 * lse - torch.logsumexp(2 * lw, 0)))
    per_row, ess = torch.cat(per_row), torch.cat(ess)
    return per_row.mean().item(), (per_row.std() / math.sqrt(per_row.shape[0])).item(), ess.mean().item()


def active_units(torch, model, x, threshold=1e-2):
    """Burda et al.'s active units: dimensions whose posterior mean has a sample variance over rows above
    `threshold`, as Research's ActiveUnits."""
    with torch.no_grad():
        mu = torch.cat([model.encoder(x[s:s + 1000]).chunk(2, -1)[0] for s in range(0, x.shape[0], 1000)]).double()
    return int((mu.var(0) > threshold).sum().item())
