"""Which UNet weights an erasure may change (ESD's naming: xattn, noxattn; plus kv and LoRA)."""

from __future__ import annotations

import torch
from torch import nn

from .choices import PARAM_SETS  # noqa: E402  (re-exported)
from .errors import EraseError


def _selected(name: str, which: str) -> bool:
    if which == "full":
        return True
    if which == "xattn":
        return "attn2" in name
    if which == "xattn-kv":
        return "attn2.to_k" in name or "attn2.to_v" in name
    if which == "noxattn":
        # ESD-u: everything but the cross-attention and the time/added-condition embeddings
        # (SDXL's ``add_embedding`` carries its pooled text and size conditioning)
        return "attn2" not in name and not name.startswith(
            ("time_embedding", "class_embedding", "add_embedding")
        )
    raise EraseError(f"unknown --train_params {which!r}; choose one of: {', '.join(PARAM_SETS)}")


def select_trainable(model: nn.Module, which: str) -> dict[str, torch.Tensor]:
    """Freeze everything, then unfreeze the chosen set; returns {name: parameter}."""
    if which == "lora":
        named = {n: p for n, p in model.named_parameters() if "lora_" in n}
        if not named:
            raise EraseError(
                "--train_params lora needs LoRA adapters on the model (add_lora first)"
            )
    else:
        named = {n: p for n, p in model.named_parameters() if _selected(n, which)}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in named.values():
        p.requires_grad_(True)
    if not named:
        raise EraseError(
            f"--train_params {which} selects no weights of this {type(model).__name__} "
            "(it has no cross-attention?); use --train_params full"
        )
    return named


class FrozenModel(nn.Module):
    """The frozen original, possibly in half precision: casts float inputs to its dtype and
    its ε back to float32, so the trainable model and the targets meet in full precision."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        if dtype is not None and next(self.model.parameters()).dtype != dtype:
            self.model.to(dtype)
        self.dtype = next(self.model.parameters()).dtype

    def _cast(self, v):
        if isinstance(v, dict):  # SDXL's added_cond_kwargs
            return {k: self._cast(x) for k, x in v.items()}
        return v.to(self.dtype) if torch.is_tensor(v) and torch.is_floating_point(v) else v

    def forward(self, x, t, **kwargs):
        cast = {k: self._cast(v) for k, v in kwargs.items() if v is not None}
        out = self.model(x.to(self.dtype), t, **cast)
        out.sample = out.sample.float()
        return out


class AdaptersDisabled(nn.Module):
    """The frozen original under LoRA: the same UNet with its adapters switched off (no copy)."""

    def __init__(self, unet):
        super().__init__()
        self._unet = [unet]  # not registered: its weights are the trainable model's

    def forward(self, x, t, **kw):
        unet = self._unet[0]
        unet.disable_adapters()
        try:
            with torch.no_grad():
                out = unet(x, t, **kw)
        finally:
            unet.enable_adapters()
        out.sample = out.sample.float()
        return out
