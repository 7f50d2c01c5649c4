"""The network of :class:`~btdensity.models.bnn.BayesianNN`: a Pyro MLP with Gaussian priors on every weight and a
heteroscedastic likelihood, its forward pass for one weight set or a stack of posterior draws, the buffer that
holds NUTS draws, and the Hessian and param-store helpers of its fits."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.nn import PyroModule, PyroSample
from torch import nn

__all__ = ["ACTIVATIONS", "BayesianMLP", "DrawBank", "hessian", "mlp", "own_param_store"]

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "silu": F.silu}
#: the same, in place: for evaluation without autograd, where a fresh tensor per layer costs more than the maths
_IN_PLACE = {torch.relu: torch.relu_, torch.tanh: torch.tanh_, F.silu: lambda h: F.silu(h, inplace=True)}
_MIN_NOISE = 1e-3          # floor of the noise scale, in standardised target units


def mlp(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
         activation: Any) -> torch.Tensor:
    """Run the MLP for one weight set (``w: (out, in)``) or a stack of draws (``w: (S, out, in)``).

    Without autograd, a stack of draws runs as batched matrix products with the bias added inside them, and
    activations work in place: several times faster than broadcasting, with the same numbers.
    """
    fused = not torch.is_grad_enabled() and weights[0].dim() == 3 and x.dim() == 2
    act = _IN_PLACE[activation] if fused else activation
    h = x.expand(weights[0].shape[0], *x.shape) if fused else x
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases)):
        if fused:
            h = torch.baddbmm(b.unsqueeze(-2), h, w.transpose(-1, -2))
        else:
            h = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)
        if i < last:
            h = act(h)
    return h


class BayesianMLP(PyroModule):
    """Pyro model: MLP with Gaussian priors on every weight, heteroscedastic likelihood on ``y``."""

    def __init__(self, n_features: int, hidden: Sequence[int], n_outputs: int, prior_scale: float,
                 activation: str, likelihood: str, df: float, device: torch.device):
        super().__init__()
        sizes = [n_features, *hidden, 2 * n_outputs]
        self.n_outputs = n_outputs
        self.activation = ACTIVATIONS[activation]
        self.likelihood = likelihood
        self.df = df
        self.layers = PyroModule[nn.ModuleList]([PyroModule[nn.Linear](a, b) for a, b in zip(sizes, sizes[1:])])
        zero = torch.zeros((), device=device)
        for layer, (fan_in, fan_out) in zip(self.layers, zip(sizes, sizes[1:])):
            w_scale = torch.full((), prior_scale / math.sqrt(fan_in), device=device)
            layer.weight = PyroSample(dist.Normal(zero, w_scale).expand([fan_out, fan_in]).to_event(2))
            layer.bias = PyroSample(dist.Normal(zero, zero + prior_scale).expand([fan_out]).to_event(1))

    def heads(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the last layer into the mean and the (positive) noise scale of the likelihood."""
        return out[..., :self.n_outputs], F.softplus(out[..., self.n_outputs:]) + _MIN_NOISE

    def noise_variance(self, scale: torch.Tensor) -> torch.Tensor:
        """Variance of the likelihood with this scale (Student-t: scale^2 * df / (df - 2))."""
        var = scale * scale
        return var if self.likelihood == "gaussian" else var * (self.df / (self.df - 2.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, beta: float = 1.0,
                data_scale: float = 1.0) -> torch.Tensor:
        # beta < 1 anneals the KL term (the guide is scaled alike); data_scale lifts a mini-batch to N.
        with poutine.scale(scale=beta):
            weights = [layer.weight for layer in self.layers]
            biases = [layer.bias for layer in self.layers]
        loc, scale = self.heads(mlp(x, weights, biases, self.activation))
        noise = dist.Normal(loc, scale) if self.likelihood == "gaussian" else dist.StudentT(self.df, loc, scale)
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=data_scale):
            return pyro.sample("y", noise.to_event(1), obs=y)


class DrawBank(nn.Module):
    """Posterior weight draws kept as buffers (NUTS has no guide: its samples are the posterior)."""

    def __init__(self, shapes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]], n_draws: int,
                 device: torch.device):
        super().__init__()
        self.n_layers = len(shapes)
        for i, (w_shape, b_shape) in enumerate(shapes):
            self.register_buffer(f"weight_{i}", torch.zeros(n_draws, *w_shape, device=device))
            self.register_buffer(f"bias_{i}", torch.zeros(n_draws, *b_shape, device=device))

    def draws(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return ([getattr(self, f"weight_{i}") for i in range(self.n_layers)],
                [getattr(self, f"bias_{i}") for i in range(self.n_layers)])


def hessian(loss: torch.Tensor, x: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Hessian of a scalar ``loss`` w.r.t. the vector ``x``: batched Hessian-vector products, ``chunk`` rows at once."""
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    eye = torch.eye(x.numel(), dtype=x.dtype, device=x.device)
    rows = [torch.autograd.grad(grad, x, grad_outputs=eye[i:i + chunk], retain_graph=True,
                                is_grads_batched=True)[0] for i in range(0, x.numel(), chunk)]
    return torch.cat(rows)


@contextlib.contextmanager
def own_param_store() -> Iterator[None]:
    """Run Pyro code against an empty global param store, restoring whatever it held afterwards."""
    with pyro.get_param_store().scope():
        yield
