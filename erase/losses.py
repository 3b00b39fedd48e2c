"""Forget and retain losses shared by every method (DESIGN §2), in the model's own output space.

A *predictor* ``predict(model_fn, x_t, t, cond) -> output`` hides whether the condition is a
class label (``UNet2DModel``) or text (``UNet2DConditionModel`` of any family); conditions are
batched on their first dimension, so a conditional and an unconditional query share one
batched forward. Targets that come from the frozen original are computed once per step,
outside the closures, so a closure evaluated at θ and at the look-ahead θ' sees the same ones.

Prediction types (``scheduler.config.prediction_type``): a model predicts ε (``epsilon``),
v = α_t ε − σ_t x₀ (``v_prediction``, SD 2.x) or x₀ (``sample``). The denoising regression
target — used by the ``denoise`` retain loss, gradient ascent and SalUn's saliency — is taken in
that space (:func:`denoising_target`). ESD's negative guidance and the anchor/preserve maps are
linear in the model's output and hold in any space as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import EraseError
from .families import cat_conds

Predictor = Callable[[Callable, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

FORGET_LOSSES = ("anchor", "esd", "ga", "noise")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
RETAIN_LOSSES = ("denoise", "preserve")


def prediction_type(scheduler) -> str:
    kind = scheduler.config.get("prediction_type", "epsilon") or "epsilon"
    if kind not in PREDICTION_TYPES:
        raise EraseError(
            f"the scheduler's prediction_type {kind!r} is not supported; "
            f"it must be one of {', '.join(PREDICTION_TYPES)}"
        )
    return kind


def denoising_target(scheduler, x0, noise, t) -> torch.Tensor:
    """What the model should output for x_t = add_noise(x0, noise, t), in its own space."""
    kind = prediction_type(scheduler)
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return x0


@dataclass
class NoisyBatch:
    """x_t, t, the noise that made it from clean samples x0 (images or latents), and the
    denoising ``target`` in the model's prediction space (ε, v or x₀)."""

    x_t: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    cond: torch.Tensor
    target: torch.Tensor | None = None

    def __post_init__(self):
        if self.target is None:  # an ε-prediction batch built by hand
            self.target = self.noise

    def take(self, sl: slice) -> NoisyBatch:
        """This process's slice of a batch drawn for the global batch."""
        return NoisyBatch(self.x_t[sl], self.t[sl], self.noise[sl], self.cond[sl], self.target[sl])


def noisy_batch(scheduler, x0, cond, generator: torch.Generator, t_range=None) -> NoisyBatch:
    """Noise ``x0`` at random timesteps drawn from ``generator`` (deterministic per step).

    ``scheduler`` must add noise the DDPM way (x_t = √ᾱ x₀ + √(1−ᾱ) ε), as the training
    scheduler of diffusers' examples does; the concept job passes ``DDPMScheduler.from_config``
    of the pipeline's scheduler (SDXL ships an Euler scheduler, whose ``add_noise`` does not)."""
    n = x0.shape[0]
    lo, hi = t_range or (0, scheduler.config.num_train_timesteps)
    t = torch.randint(lo, hi, (n,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
    x_t = scheduler.add_noise(x0, noise, t)
    return NoisyBatch(x_t, t, noise, cond, denoising_target(scheduler, x0, noise, t))


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
    """The regression target of a forget loss, from the frozen original (None for ``ga`` and
    ``noise``, whose target is the batch's own denoising target).

    ``esd``: ε*(x_t, ∅) − η [ε*(x_t, c_f) − ε*(x_t, ∅)] — both predictions in one forward.
    ``anchor``: ε*(x_t, c_anchor) (SalUn's mapping to a harmless concept or another class).
    """
    if kind in ("ga", "noise"):
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
            cat_conds([batch.cond, null_cond]),
        )
        cond_eps, uncond_eps = both[:n], both[n:]
        return uncond_eps - eta * (cond_eps - uncond_eps)
    raise ValueError(f"unknown forget loss {kind!r}; choose from {FORGET_LOSSES}")


def forget_loss(kind: str, predict: Predictor, batch: NoisyBatch, target, ga_bound: float = 1.0):
    """Closure ``loss(model_fn, micro)`` for a forget loss on one (micro-)batch.

    ``noise`` is Concept Ablation's noise-based loss: the ordinary denoising loss, but on images
    of the anchor under the concept's prompt (the task draws them so).
    ``ga`` ascends the denoising loss (in the model's prediction space); it is bounded (no gradient once the per-batch MSE is
    above ``ga_bound``), since unbounded ascent diverges and wrecks the whole model.
    """

    def loss(model_fn, micro=0):
        eps = predict(model_fn, batch.x_t, batch.t, batch.cond)
        if kind == "ga":
            mse = _mse(eps, batch.target)
            return -torch.clamp(mse, max=ga_bound)
        if kind == "noise":
            return _mse(eps, batch.target)
        return _mse(eps, target)

    return loss


def retain_loss(kind: str, predict: Predictor, batch: NoisyBatch, target=None):
    """Closure for a retain loss: ``denoise`` (the denoising MSE on retain data, in the model's
    prediction space) or ``preserve`` (distillation onto the frozen original's ``target``)."""
    if kind not in RETAIN_LOSSES:
        raise ValueError(f"unknown retain loss {kind!r}; choose from {RETAIN_LOSSES}")

    def loss(model_fn, micro=0):
        eps = predict(model_fn, batch.x_t, batch.t, batch.cond)
        return _mse(eps, batch.target if kind == "denoise" else target)

    return loss
