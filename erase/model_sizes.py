"""The image sizes a pipeline can take, read from its configs before any weights load, so a
size it cannot take is one error line rather than a diffusers traceback after loading."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import EraseError


def vae_scale_factor(folder: Path) -> int:
    """The VAE's downsampling factor, 2**(len(block_out_channels) - 1), as diffusers computes
    it; the pipelines need height and width divisible by it."""
    cfg_file = Path(folder) / "vae" / "config.json"
    if not cfg_file.exists():
        return 8  # diffusers' own fallback
    channels = json.loads(cfg_file.read_text()).get("block_out_channels", [0] * 4)
    return 2 ** (len(channels) - 1)


def check_resolution(folder: Path, resolution: int | None, flag: str = "--resolution") -> None:
    """One ``EraseError`` naming the allowed values when ``resolution`` does not fit the VAE."""
    if resolution is None:
        return
    factor = vae_scale_factor(folder)
    if resolution % factor:
        lower = max(factor, resolution - resolution % factor)
        raise EraseError(
            f"{flag} {resolution} does not fit this model: its VAE downsamples by {factor}, so "
            f"sizes must be multiples of {factor} (e.g. {lower} or {lower + factor})"
        )
