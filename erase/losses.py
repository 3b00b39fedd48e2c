"""Forget and retain losses shared by every method (DESIGN §2), for any ε-prediction model.

A *predictor* ``predict(model_fn, x_t, t, cond) -> ε`` hides whether the condition is a class
label (``UNet2DModel``) or a text embedding (``UNet2DConditionModel``); conditions are tensors
whose first dimension is the batch, so a conditional and an unconditional query share one
batched forward. Targets that come from the frozen original are computed once per step,
outside the closures, so a closure evaluated at θ and at the look-ahead θ' sees the same ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Predictor = Callable[[Callable, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

FORGET_LOSSES = ("anchor", "esd", "ga")
RETAIN_LOSSES = ("denoise", "preserve")


@dataclass
class NoisyBatch:
    """x_t, t and the noise that made it from clean samples x0 (images or latents)."""

    x_t: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    cond: torch.Tensor

    def take(self, sl: slice) -> NoisyBatch:
        """This process's slice of a batch drawn for the global batch."""
        return NoisyBatch(self.x_t[sl], self.t[sl], self.noise[sl], self.cond[sl])


def noisy_batch(scheduler, x0, cond, generator: torch.Generator, t_range=None) -> NoisyBatch:
    """Noise ``x0`` at random timesteps drawn from ``generator`` (deterministic per step)."""
    n = x0.shape[0]
    lo, hi = t_range or (0, scheduler.config.num_train_timesteps)
    t = torch.randint(lo, hi, (n,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
    return NoisyBatch(scheduler.add_noise(x0, noise, t), t, noise, cond)


@torch.no_grad()
def frozen_eps(predict: Predictor, frozen, x_t, t, cond) -> torch.Tensor:
    out = predict(frozen, x_t, t, cond)
    return out.float()


def _mse(a, b):
    return F.mse_loss(a.float(), b.float())


def forget_target(
    kind: str,
    predict: Predictor,
    frozen,
    batch: NoisyBatch,
    *,
    anchor_cond=None,
    null_cond=None,
    eta: float = 1.0,
) -> torch.Tensor | None:
    """The regression target of a forget loss, from the frozen original (None for ``ga``).

    ``esd``: ε*(x_t, ∅) − η [ε*(x_t, c_f) − ε*(x_t, ∅)] — both predictions in one forward.
    ``anchor``: ε*(x_t, c_anchor) (SalUn's mapping to a harmless concept or another class).
    """
    if kind == "ga":
        return None
    if kind == "anchor":
        if anchor_cond is None:
            raise ValueError("the anchor forget loss needs anchor conditions")
        return frozen_eps(predict, frozen, batch.x_t, batch.t, anchor_cond)
    if kind == "esd":
        if null_cond is None:
            raise ValueError("the esd forget loss needs the null (unconditional) condition")
        n = batch.x_t.shape[0]
        both = frozen_eps(
            predict,
            frozen,
            torch.cat([batch.x_t, batch.x_t]),
            torch.cat([batch.t, batch.t]),
            torch.cat([batch.cond, null_cond]),
        )
        cond_eps, uncond_eps = both[:n], both[n:]
        return uncond_eps - eta * (cond_eps - uncond_eps)
    raise ValueError(f"unknown forget loss {kind!r}; choose from {FORGET_LOSSES}")


def forget_loss(kind: str, predict: Predictor, batch: NoisyBatch, target, ga_bound: float = 1.0):
    """Closure ``loss(model_fn, micro)`` for a forget loss on one (micro-)batch.

    ``ga`` ascends the denoising loss; it is bounded (no gradient once the per-batch MSE is
    above ``ga_bound``), since unbounded ascent diverges and wrecks the whole model.
    """

    def loss(model_fn, micro=0):
        eps = predict(model_fn, batch.x_t, batch.t, batch.cond)
        if kind == "ga":
            mse = _mse(eps, batch.noise)
            return -torch.clamp(mse, max=ga_bound)
        return _mse(eps, target)

    return loss


def retain_loss(kind: str, predict: Predictor, batch: NoisyBatch, target=None):
    """Closure for a retain loss: ``denoise`` (ε-MSE on retain data) or ``preserve``
    (distillation onto the frozen original's prediction ``target``)."""
    if kind not in RETAIN_LOSSES:
        raise ValueError(f"unknown retain loss {kind!r}; choose from {RETAIN_LOSSES}")

    def loss(model_fn, micro=0):
        eps = predict(model_fn, batch.x_t, batch.t, batch.cond)
        return _mse(eps, batch.noise if kind == "denoise" else target)

    return loss
