"""Class erasure for a class-conditional ``UNet2DModel`` (DDPM/DDIM with a null class).

Forget batch: real images of the forget classes, labelled with the forget class; ``anchor``
regresses onto the frozen original's prediction for a random *other* class ("random label"; or
one of ``anchor_classes``: the regression's target is the anchors' average prediction, and the
nine other digits' average looks like an 8, which random label therefore cannot erase),
``esd`` onto negative guidance from the null class, ``ga`` ascends the denoising loss.
Retain batch: real images of the remaining classes with their labels (``denoise``), or the
frozen original's predictions on them (``preserve``, distillation). A share of the retain labels
(``retain_null_prob``, the pretraining recipe's rate) is replaced by the null class: guidance
samples with ``ε_u + w (ε_c − ε_u)``, so an unconditional branch left untrained drifts with the
shared weights and degrades every remaining class.
"""

from __future__ import annotations

import torch

from ..data.class_data import ClassData
from ..errors import EraseError
from ..losses import forget_loss, forget_target, frozen_eps, noisy_batch, retain_loss


def predict_class(model_fn, x_t, t, cond):
    return model_fn(x_t, t, class_labels=cond).sample


class ClassErasureTask:
    predict = staticmethod(predict_class)

    def __init__(
        self,
        frozen,
        scheduler,
        data: ClassData,
        forget_classes: list[int],
        null_class: int | None,
        forget_kind: str,
        retain_kind: str | None,
        batch_size: int,
        device,
        eta: float = 1.0,
        ga_bound: float = 1.0,
        retain_null_prob: float = 0.1,
        anchor_classes: list[int] | None = None,
    ):
        self.frozen, self.scheduler = frozen, scheduler
        self.forget_kind, self.retain_kind = forget_kind, retain_kind
        self.batch_size, self.device = batch_size, device
        self.eta, self.ga_bound, self.null_class = eta, ga_bound, null_class
        self.forget_classes = forget_classes
        if not 0.0 <= retain_null_prob < 1.0:
            raise EraseError(f"--retain_null_prob must be in [0, 1), got {retain_null_prob}")
        self.retain_null_prob = retain_null_prob if null_class is not None else 0.0
        n = data.num_classes
        others = [c for c in range(n) if c not in forget_classes]
        self.anchor_classes = torch.tensor(
            sorted(set(anchor_classes)) if anchor_classes else others
        )
        if len(self.anchor_classes) == 0:
            raise EraseError("every class is a forget class; leave at least one to retain")
        is_forget = torch.isin(data.labels, torch.tensor(forget_classes))
        self.forget_x, self.forget_y = data.images[is_forget], data.labels[is_forget]
        self.retain_x, self.retain_y = data.images[~is_forget], data.labels[~is_forget]
        if len(self.forget_x) == 0:
            raise EraseError(f"the training data has no images of forget classes {forget_classes}")
        if forget_kind == "esd" and null_class is None:
            raise EraseError(
                "the esd forget loss needs a UNet with a null class (class-free guidance)"
            )

    def _draw(self, x, y, generator, rank, world):
        """A global batch of ``batch_size × world`` (drawn once), this process's slice of it."""
        n = self.batch_size * world
        idx = torch.randint(len(x), (n,), generator=generator)
        sl = slice(rank * self.batch_size, (rank + 1) * self.batch_size)
        return x[idx].to(self.device), y[idx].to(self.device), sl

    def closures(self, generator: torch.Generator, rank: int = 0, world: int = 1):
        xf, yf, sl = self._draw(self.forget_x, self.forget_y, generator, rank, world)
        anchors = self.anchor_classes[
            torch.randint(len(self.anchor_classes), (len(yf),), generator=generator)
        ].to(self.device)
        fb = noisy_batch(self.scheduler, xf, yf, generator).take(sl)
        anchors = anchors[sl]
        null = None
        if self.null_class is not None:
            null = torch.full_like(fb.cond, self.null_class)
        target = forget_target(
            self.forget_kind,
            self.predict,
            self.frozen,
            fb,
            anchor_cond=anchors,
            null_cond=null,
            eta=self.eta,
        )
        forget = forget_loss(self.forget_kind, self.predict, fb, target, self.ga_bound)
        if self.retain_kind is None:
            return forget, None
        xr, yr, sl = self._draw(self.retain_x, self.retain_y, generator, rank, world)
        if self.retain_null_prob > 0:
            drop = torch.rand(len(yr), generator=generator) < self.retain_null_prob
            yr = torch.where(drop.to(yr.device), torch.full_like(yr, self.null_class), yr)
        rb = noisy_batch(self.scheduler, xr, yr, generator).take(sl)
        r_target = None
        if self.retain_kind == "preserve":
            r_target = frozen_eps(self.predict, self.frozen, rb.x_t, rb.t, rb.cond)
        return forget, retain_loss(self.retain_kind, self.predict, rb, r_target)

    def saliency_closure(self, generator: torch.Generator, rank: int = 0, world: int = 1):
        """The denoising loss on forget data: its gradient magnitude defines SalUn's mask."""
        xf, yf, sl = self._draw(self.forget_x, self.forget_y, generator, rank, world)
        fb = noisy_batch(self.scheduler, xf, yf, generator).take(sl)
        return retain_loss("denoise", self.predict, fb)
