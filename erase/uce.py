"""Unified Concept Editing (UCE, Gandikota et al., 2024): a closed-form edit of the
cross-attention key/value projections, no training loop.

For every ``attn2.to_k`` / ``attn2.to_v`` weight W (``[out, d]``, it maps text states to keys or
values), with cᵢ the concept prompts' token states, v*ᵢ = W c_guide,ᵢ the guide's (the anchor, ""
by default) at the same token position, and cⱼ the retain prompts' token states:

    W ← (λ W + s_e Σᵢ v*ᵢ cᵢᵀ + s_p Σⱼ (W cⱼ) cⱼᵀ) (λ I + s_e Σᵢ cᵢ cᵢᵀ + s_p Σⱼ cⱼ cⱼᵀ)⁻¹

the least-squares W' that sends the concept's tokens where the guide's go, keeps the retain
tokens' outputs, and stays near W (λ). Defaults as in its authors' current code: λ 0.5,
s_e 1, s_p 1. Token states are paired position by position (BOS to the last padding token), so
every position a concept writes into the cross-attention is redirected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import EraseError


@dataclass(frozen=True)
class UCEConfig:
    lamb: float = 0.5
    erase_scale: float = 1.0
    preserve_scale: float = 1.0


def _tokens(cond) -> torch.Tensor:
    """[N·L, d] token states of a batch of prompt conditions (TextCond or states)."""
    states = cond.embeds if hasattr(cond, "embeds") else cond
    return states.reshape(-1, states.shape[-1]).double()


def kv_projections(unet) -> dict[str, torch.nn.Linear]:
    """The cross-attention key/value projections UCE edits, by parameter name."""
    found = {
        f"{name}.weight": mod
        for name, mod in unet.named_modules()
        if name.endswith(("attn2.to_k", "attn2.to_v")) and isinstance(mod, torch.nn.Linear)
    }
    if not found:
        raise EraseError(
            f"this {type(unet).__name__} has no cross-attention key/value projections "
            "(attn2.to_k / attn2.to_v); UCE edits text-conditional UNets"
        )
    return found


@torch.no_grad()
def uce_edit(unet, concept, guide, retain, cfg: UCEConfig = UCEConfig()) -> dict[str, float]:
    """Edit ``unet`` in place; ``concept``/``guide``: conditions of the same prompt count (the
    guide paired with each concept prompt), ``retain``: conditions of prompts to keep (or None).
    Returns the relative change ‖W' − W‖ / ‖W‖ of each edited weight."""
    c_e, c_g = _tokens(concept), _tokens(guide)
    if c_e.shape != c_g.shape:
        raise EraseError("UCE needs one guide prompt per concept prompt (an [anchor] each)")
    if min(cfg.lamb, cfg.erase_scale, cfg.preserve_scale) < 0 or cfg.lamb == 0:
        raise EraseError("UCE needs λ > 0 and non-negative erase/preserve scales")
    c_p = _tokens(retain) if retain is not None else c_e.new_zeros(0, c_e.shape[1])
    d = c_e.shape[1]
    right = cfg.lamb * torch.eye(d, dtype=torch.float64)
    right += cfg.erase_scale * c_e.T @ c_e + cfg.preserve_scale * c_p.T @ c_p
    right_inv = torch.linalg.inv(right)
    changes = {}
    for name, lin in kv_projections(unet).items():
        w = lin.weight.double().cpu()
        if w.shape[1] != d:
            raise EraseError(
                f"{name} takes {w.shape[1]}-d text states but the prompts give {d}-d ones"
            )
        left = cfg.lamb * w
        left += cfg.erase_scale * (c_g @ w.T).T @ c_e  # Σ v*ᵢ cᵢᵀ with v*ᵢ = W c_guide,ᵢ
        left += cfg.preserve_scale * (c_p @ w.T).T @ c_p  # Σ (W cⱼ) cⱼᵀ
        new = left @ right_inv
        changes[name] = float((new - w).norm() / w.norm())
        lin.weight.copy_(new.to(lin.weight.dtype))
    return changes
