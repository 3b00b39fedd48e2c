"""Image folders in and out: listing, decoding with one clear error, tensor ↔ PIL.

Every CLI that reads user images (reference sets, forget images, generated answer sets) goes
through here so that an empty folder or an unreadable file is one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import EraseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files in ``folder`` (sorted by name); a missing or empty folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EraseError(f"image folder {str(folder)!r} does not exist")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise EraseError(
            f"image folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def load_image(path: str | os.PathLike):
    """A PIL RGB image, fully decoded; an unreadable file is an ``EraseError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise EraseError(f"image {str(path)!r} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise EraseError(f"cannot read image {str(path)!r} ({exc.__class__.__name__})") from None


def load_images(paths: Sequence[str | os.PathLike]) -> list:
    return [load_image(p) for p in paths]


def pil_to_tensor(images: Sequence, grey: bool = False):
    """PIL images of one size → ``[N,C,H,W]`` float tensor in [-1, 1]."""
    import numpy as np
    import torch

    sizes = {im.size for im in images}
    if len(sizes) > 1:
        raise EraseError(f"images differ in size ({sorted(sizes)[:3]}...); resize them first")
    mode = "L" if grey else "RGB"
    arr = np.stack([np.asarray(im.convert(mode), dtype=np.float32) for im in images])
    if grey:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def tensor_to_pil(images, scale: int = 1) -> list:
    """``[N,C,H,W]`` in [-1, 1] → PIL images (optionally nearest-neighbour upscaled)."""
    from PIL import Image

    arr = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    out = []
    for a in arr:
        a = a.permute(1, 2, 0).numpy()
        im = Image.fromarray(a[..., 0], mode="L") if a.shape[-1] == 1 else Image.fromarray(a)
        if scale != 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        out.append(im.convert("RGB"))
    return out
