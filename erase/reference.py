"""The exact-unlearning reference: the same recipe as the original, without the concept's data.

It is the yardstick of the unlearning literature (the seed paper's Fig. 1A measures each
method's discrepancy to it): how close is an erased model to one that never learned the
concept? It is also the floor of robustness: how fast a model that never saw the concept
learns it from the attacker's images. Two references of different seeds give the noise floor.

References are trained on demand into the user cache (``$ERASE_CACHE_DIR/references/``, never
committed: their figures are) and their cost is recorded, since that cost is what erasure saves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .embedded.digits import cache_dir
from .errors import EraseError


def references_dir() -> Path:
    return cache_dir() / "references"


def digits_reference_path(forget_classes, seed: int = 0) -> Path:
    ks = "-".join(str(int(k)) for k in sorted(set(forget_classes)))
    return references_dir() / f"digits_ddpm-without-{ks}-seed{seed}"


def _trained(folder: Path) -> bool:
    return (folder / "unet" / "config.json").exists() and (folder / "world.json").exists()


def digits_reference(forget_classes, seed: int = 0, progress: bool = True) -> Path:
    """The digits DDPM retrained from scratch without ``forget_classes`` (cached).

    Same recipe as the committed original (``erase.embedded.ddpm.train_digits_ddpm``: steps,
    batch, schedule, EMA, the train split) with those classes' images removed; seed 0 is the
    original's seed, seed 1 the second reference of the noise floor.
    """
    folder = digits_reference_path(forget_classes, seed)
    if _trained(folder):
        return folder
    from .embedded.classifier import load_digits_classifier
    from .embedded.ddpm import DEFAULT_TRAIN_STEPS, train_digits_ddpm

    print(
        f"training the exact-unlearning reference (digits DDPM without {sorted(forget_classes)}, "
        f"seed {seed}, {DEFAULT_TRAIN_STEPS} steps; about 25 minutes on one CPU core) -> {folder}",
        file=sys.stderr,
    )
    train_digits_ddpm(
        output_dir=folder,
        max_steps=DEFAULT_TRAIN_STEPS,
        seed=seed,
        classifier=load_digits_classifier(),
        exclude_classes=tuple(int(k) for k in forget_classes),
        progress=progress,
    )
    return folder


def resolve_reference(spec: str | None, forget_classes, seed: int = 0) -> Path | None:
    """``--reference``: ``auto`` (the digits world's cached reference, trained if missing), a
    folder (a model of the same family trained without the concept), or None."""
    if spec is None or spec == "off":
        return None
    if spec == "auto":
        return digits_reference(forget_classes, seed)
    folder = Path(spec)
    if not (folder / "unet" / "config.json").exists():
        raise EraseError(
            f"--reference {spec!r} is not a model folder with unet/config.json; pass a model "
            "retrained without the concept (erase-train-ddpm --exclude_class K) or auto"
        )
    return folder


def training_cost(folder: Path) -> dict:
    """What the reference cost to train, as its ``world.json`` records it."""
    world_file = Path(folder) / "world.json"
    if not world_file.exists():
        return {}
    t = json.loads(world_file.read_text()).get("training", {})
    return {k: t[k] for k in ("steps", "seconds", "batch_size", "threads") if k in t}
