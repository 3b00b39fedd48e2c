"""Audit grids: rows are prompts (or classes), columns are seeds, base and erased side by side.

The image block of each panel is ``diffusers.utils.make_image_grid``; PIL adds what it lacks,
readable row/column captions and a panel title. Small images (the 16×16 embedded world) are
upscaled with nearest-neighbour so one can see what was drawn.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .errors import EraseError

MIN_CELL = 96
PAD = 6
GAP = 2
BG = (255, 255, 255)
FG = (20, 20, 20)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: a fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    box = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
    return box[2] - box[0], box[3] - box[1]


def _wrap(text: str, width_px: int, font_size: int) -> str:
    chars = max(8, int(width_px / (0.55 * font_size)))
    lines = textwrap.wrap(text, width=chars) or [""]
    if len(lines) > 4:
        lines = lines[:4]
        lines[-1] = lines[-1][: max(0, chars - 1)] + "…"
    return "\n".join(lines)


def _cell_size(images: Sequence[Image.Image], cell: int | None) -> int:
    if cell is not None:
        return cell
    side = max(max(im.size) for im in images)
    if side >= MIN_CELL:
        return min(side, 256)
    return side * -(-MIN_CELL // side)  # an integer multiple: crisp nearest-neighbour pixels


def image_grid(
    rows: Sequence[Sequence[Image.Image]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell: int | None = None,
    font_size: int = 14,
) -> Image.Image:
    """One captioned panel: ``rows[r][c]`` placed at row r, column c."""
    from diffusers.utils import make_image_grid

    if not rows or not rows[0]:
        raise EraseError("a grid needs at least one image")
    n_cols = len(rows[0])
    if any(len(r) != n_cols for r in rows):
        raise EraseError("every grid row needs the same number of images")
    flat = [im.convert("RGB") for r in rows for im in r]
    size = _cell_size(flat, cell)
    resample = Image.NEAREST if max(flat[0].size) < size else Image.BICUBIC
    # a thin white frame per cell, so neighbouring dark images stay apart
    flat = [ImageOps.expand(im.resize((size, size), resample), GAP, BG) for im in flat]
    size += 2 * GAP
    body = make_image_grid(flat, rows=len(rows), cols=n_cols)

    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_labels = list(row_labels or [])
    col_labels = list(col_labels or [])
    label_w = 0
    wrapped_rows = []
    if row_labels:
        max_w = max(160, size * 2)
        wrapped_rows = [_wrap(t, max_w, font_size) for t in row_labels]
        label_w = max(_text_size(probe, t, font)[0] for t in wrapped_rows) + 2 * PAD
    col_h = (max(_text_size(probe, t, font)[1] for t in col_labels) + 2 * PAD) if col_labels else 0
    title_font = _font(font_size + 2)
    title_text = _wrap(title, label_w + body.width, font_size + 2) if title else ""
    title_h = (_text_size(probe, title_text, title_font)[1] + 2 * PAD) if title else 0

    out = Image.new("RGB", (label_w + body.width, title_h + col_h + body.height), BG)
    out.paste(body, (label_w, title_h + col_h))
    draw = ImageDraw.Draw(out)
    if title:
        draw.multiline_text((PAD, PAD), title_text, fill=FG, font=title_font, spacing=2)
    for c, text in enumerate(col_labels[:n_cols]):
        w, _ = _text_size(draw, text, font)
        draw.text((label_w + c * size + (size - w) // 2, title_h + PAD), text, fill=FG, font=font)
    for r, text in enumerate(wrapped_rows[: len(rows)]):
        _, h = _text_size(draw, text, font)
        y = title_h + col_h + r * size + (size - h) // 2
        draw.multiline_text((PAD, y), text, fill=FG, font=font, spacing=2)
    return out


def side_by_side(panels: Sequence[Image.Image], gap: int = 16) -> Image.Image:
    """Panels next to each other, top-aligned, on white."""
    if not panels:
        raise EraseError("nothing to put side by side")
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    out = Image.new("RGB", (width, max(p.height for p in panels)), BG)
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + gap
    return out


def comparison_grid(
    panels: Sequence[tuple[str, Sequence[Sequence[Image.Image]]]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    cell: int | None = None,
) -> Image.Image:
    """``[(title, rows), ...]`` → one image: e.g. base and erased, same prompts and seeds.

    Row captions are drawn on the first panel only; every panel shares the cell size so the
    same (prompt, seed) sits at the same height.
    """
    if not panels:
        raise EraseError("no panels to compare")
    all_images = [im for _, rows in panels for r in rows for im in r]
    size = _cell_size(all_images, cell)
    out = [
        image_grid(rows, row_labels if i == 0 else None, col_labels, title=title, cell=size)
        for i, (title, rows) in enumerate(panels)
    ]
    return side_by_side(out)


def save_grid(image: Image.Image, path: str | os.PathLike) -> None:
    """Write atomically (a crash never leaves a truncated PNG)."""
    from .io import save_image

    save_image(image, path)
