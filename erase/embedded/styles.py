"""Deterministic visual styles of the real digits, and the prompts that name them.

A style is a fixed rendering of the same handwritten digit, so a style's "concept" is
measurable (the judge's style head) independently of the digit's identity (its digit head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import EraseError

IMAGE_SIZE = 16
STYLES = ["plain", "inverted", "thick", "outlined", "striped"]
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _dilate_cross(x: torch.Tensor) -> torch.Tensor:
    """Dilation by a plus-shaped kernel: bolder strokes that keep the digit's holes open."""
    p = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    shifts = [p[..., 1 : h + 1, 1 : w + 1], p[..., :h, 1 : w + 1], p[..., 2:, 1 : w + 1]]
    shifts += [p[..., 1 : h + 1, :w], p[..., 1 : h + 1, 2:]]
    return torch.stack(shifts).amax(0)


def _erode(x: torch.Tensor) -> torch.Tensor:
    return -F.max_pool2d(-x, 3, stride=1, padding=1)


def render(images: torch.Tensor, style: str, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Render 8×8 digits (``[N,1,8,8]`` in [-1, 1], as ``digits.load_digits_images``) in a style.

    Returns ``[N,1,size,size]`` in [-1, 1]; ink is bright on dark (except ``inverted``).
    """
    if style not in STYLES:
        raise EraseError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    if images.dim() != 4 or images.shape[1] != 1:
        raise EraseError(f"render expects digits shaped [N,1,H,W], got {tuple(images.shape)}")
    ink = ((images.float() + 1.0) / 2.0).clamp(0, 1)
    ink = F.interpolate(ink, size=(size, size), mode="bilinear", align_corners=False)
    if style == "plain":
        out = ink
    elif style == "inverted":
        out = 1.0 - ink
    elif style == "thick":
        out = (_dilate_cross(ink) * 1.5).clamp(0, 1)
    elif style == "outlined":
        out = ((_dilate(ink) - _erode(ink)) * 1.5).clamp(0, 1)
    else:  # striped: ink on every other row only
        rows = (torch.arange(size) % 2 == 0).to(ink.dtype).view(1, 1, size, 1)
        out = ink * rows
    return out * 2.0 - 1.0


def render_all_styles(images: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """``[S, N, 1, size, size]``: every digit in every style, in ``STYLES`` order."""
    return torch.stack([render(images, s, size) for s in STYLES])


def digit_word(digit: int) -> str:
    if not 0 <= int(digit) <= 9:
        raise EraseError(f"digit must be 0..9, got {digit}")
    return DIGIT_WORDS[int(digit)]


def digit_prompt(digit: int | str) -> str:
    """The plain prompt of a digit: "a handwritten digit three" (plain style is the default)."""
    word = digit if isinstance(digit, str) else digit_word(digit)
    return f"a handwritten digit {word}"


def style_prompt(digit: int | str, style: str) -> str:
    """The styled prompt: "a handwritten digit three in inverted style"."""
    if style not in STYLES:
        raise EraseError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    return f"{digit_prompt(digit)} in {style} style"


def style_only_prompt(style: str) -> str:
    """A style without a digit: "a handwritten digit in inverted style" (for style erasure)."""
    if style not in STYLES:
        raise EraseError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    return f"a handwritten digit in {style} style"


def prompt_for(digit: int | str, style: str | None = None) -> str:
    """``digit_prompt`` when ``style`` is None, else ``style_prompt``."""
    return digit_prompt(digit) if style is None else style_prompt(digit, style)
