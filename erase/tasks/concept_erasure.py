"""Concept erasure for a text-to-image ``UNet2DConditionModel`` (Stable Diffusion).

All text conditions (:class:`erase.families.TextCond`, any pipeline family) are computed once
before training; forget (and retain) x0 are latents of
images the user gave or that the original pipeline generated once for those prompts (cached
on disk). So a training step touches only the UNet and its frozen original.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..families import TextCond, unet_call_kwargs
from ..losses import forget_loss, forget_target, frozen_eps, noisy_batch, retain_loss


def predict_text(model_fn, x_t, t, cond):
    """The UNet's output (in its own prediction space) for text conditions of any family."""
    return model_fn(x_t, t, **unet_call_kwargs(cond)).sample


@dataclass
class LatentPool:
    """x0 latents and, for each, the index of its prompt embedding."""

    latents: torch.Tensor  # [N, C, h, w]
    prompt_index: torch.Tensor  # [N]
    embeddings: TextCond | torch.Tensor  # P prompt conditions ([P, L, D] states, + SDXL's)
    anchor_embeddings: TextCond | torch.Tensor | None = None  # one per prompt


class ConceptErasureTask:
    predict = staticmethod(predict_text)

    def __init__(
        self,
        frozen,
        scheduler,
        forget: LatentPool,
        retain: LatentPool | None,
        null_embedding: torch.Tensor,
        forget_kind: str,
        retain_kind: str | None,
        batch_size: int,
        device,
        eta: float = 1.0,
        ga_bound: float = 1.0,
    ):
        self.frozen, self.scheduler = frozen, scheduler
        self.forget, self.retain = forget, retain
        self.null = null_embedding.to(device)
        self.forget_kind, self.retain_kind = forget_kind, retain_kind
        self.batch_size, self.device, self.eta, self.ga_bound = batch_size, device, eta, ga_bound

    def _draw(self, pool: LatentPool, generator, rank, world):
        n = self.batch_size * world
        idx = torch.randint(len(pool.latents), (n,), generator=generator)
        x0 = pool.latents[idx].to(self.device)
        pidx = pool.prompt_index[idx]
        cond = pool.embeddings[pidx].to(self.device)
        anchor = (
            pool.anchor_embeddings[pidx].to(self.device)
            if pool.anchor_embeddings is not None
            else None
        )
        return x0, cond, anchor, slice(rank * self.batch_size, (rank + 1) * self.batch_size)

    def closures(self, generator: torch.Generator, rank: int = 0, world: int = 1):
        x0, cond, anchor, sl = self._draw(self.forget, generator, rank, world)
        fb = noisy_batch(self.scheduler, x0, cond, generator).take(sl)
        anchor = anchor[sl] if anchor is not None else None
        null = self.null.expand(fb.cond.shape[0], *self.null.shape[1:])
        target = forget_target(
            self.forget_kind,
            self.predict,
            self.frozen,
            fb,
            anchor_cond=anchor,
            null_cond=null,
            eta=self.eta,
        )
        forget = forget_loss(self.forget_kind, self.predict, fb, target, self.ga_bound)
        if self.retain_kind is None or self.retain is None:
            return forget, None
        x0, cond, _, sl = self._draw(self.retain, generator, rank, world)
        rb = noisy_batch(self.scheduler, x0, cond, generator).take(sl)
        r_target = None
        if self.retain_kind == "preserve":
            r_target = frozen_eps(self.predict, self.frozen, rb.x_t, rb.t, rb.cond)
        return forget, retain_loss(self.retain_kind, self.predict, rb, r_target)

    def saliency_closure(self, generator: torch.Generator, rank: int = 0, world: int = 1):
        x0, cond, _, sl = self._draw(self.forget, generator, rank, world)
        fb = noisy_batch(self.scheduler, x0, cond, generator).take(sl)
        return retain_loss("denoise", self.predict, fb)
