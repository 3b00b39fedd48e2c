"""The audit grid of an attack: original | erased | attacked, one row per (prompt, seed)."""

from __future__ import annotations

from pathlib import Path

from ..grids import image_grid, save_grid
from ..images import load_image

MAX_ROWS = 16


def save_attack_grid(records, out: Path, title: str = "", max_rows: int = MAX_ROWS) -> None:
    rows, labels = [], []
    for r in records[:max_rows]:
        rows.append([load_image(out / p) for p in (r.original_image, r.erased_image, r.image)])
        mark = "seen" if (r.success or r.success_before) else "not seen"
        labels.append(f"{r.adversarial_prompt or r.prompt} (seed {r.seed}; {mark})")
    cols = ["original", "erased", "attacked"]
    save_grid(image_grid(rows, labels, cols, title=title), out / "grid.png")
