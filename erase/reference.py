"""The exact-unlearning reference: the same recipe as the original, without the concept's data.

It is the yardstick of the unlearning literature (the seed paper's Fig. 1A measures each
method's discrepancy to it): how close is an erased model to one that never learned the
concept? It is also the floor of robustness: how fast a model that never saw the concept
learns it from the attacker's images. Several references of different seeds give their mean,
which the run is measured against, and the noise floor (:mod:`erase.reference_gap`).

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
    original's seed; seeds 1, 2, … the further references of the mean and the noise floor.
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


def concept_reference_path(concepts, seed: int = 0) -> Path:
    return references_dir() / f"tiny_sd-without-{'-'.join(sorted(set(concepts)))}-seed{seed}"


def concept_reference(concepts, seed: int = 0, progress: bool = True) -> Path:
    """The tiny text-to-image world retrained without ``concepts`` (digit words, styles; cached).

    The committed pipeline's recipe (``train_tiny_sd``'s defaults: VAE, then UNet and text
    encoder, one CPU thread) without those images and so without their prompts; judged by the
    committed judge. About 25 minutes on one CPU core.
    """
    from .embedded.tiny_sd import _is_pipeline_dir, excluded_concepts

    names = excluded_concepts(concepts)
    folder = concept_reference_path(names, seed)
    if _is_pipeline_dir(folder) and (folder / "world.json").exists():
        return folder
    import torch

    from .embedded.digits import ASSETS_DIR
    from .embedded.judge import JUDGE_ASSET, load_judge
    from .embedded.tiny_sd import train_tiny_sd

    print(
        f"training the exact-unlearning reference (tiny SD without {sorted(names)}, seed {seed}; "
        f"about 25 minutes on one CPU core) -> {folder}",
        file=sys.stderr,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the committed pipeline's setting: same kernels, same recipe
    try:
        judge = load_judge(ASSETS_DIR / JUDGE_ASSET)
        train_tiny_sd(folder, seed=seed, judge=judge, exclude=names, progress=progress)
    finally:
        torch.set_num_threads(threads)
    return folder


CLASS_RECIPE = "erase-train-ddpm --exclude_class K"
CONCEPT_RECIPE = "scripts/train_tiny_sd.py --exclude_concept C"


def check_reference_specs(specs, what: str = "model folder", recipe: str = CLASS_RECIPE) -> None:
    """``--reference`` before any work: each ``auto`` (at position i: seed i), ``off`` or a
    folder with ``unet/config.json``; ``recipe`` says how to train one. From two on, the run is
    measured against their mean and they give the noise floor."""
    for spec in specs:
        if spec not in (None, "auto", "off") and not (Path(spec) / "unet" / "config.json").exists():
            raise EraseError(
                f"--reference {spec!r} is not a {what} with unet/config.json; pass a model "
                f"retrained without the concept ({recipe}) or auto"
            )


def reference_specs(specs):
    """``--reference`` as the run uses it: None for no reference (not given, or ``off``),
    else the checked list."""
    if not specs or list(specs) == ["off"]:
        return None
    if "off" in specs:
        raise EraseError("--reference off takes no other reference (drop 'off' or the others)")
    return list(specs)


def _resolve(spec, train, what: str, recipe: str) -> Path | None:
    if spec is None or spec == "off":
        return None
    check_reference_specs([spec], what, recipe)
    return train() if spec == "auto" else Path(spec)


def resolve_concept_reference(spec: str | None, concepts, seed: int = 0) -> Path | None:
    """``--reference`` of a concept erasure: ``auto`` (the tiny world retrained without the
    concept, cached), a pipeline folder trained without it, or None."""
    return _resolve(
        spec, lambda: concept_reference(concepts, seed), "pipeline folder", CONCEPT_RECIPE
    )


def resolve_reference(spec: str | None, forget_classes, seed: int = 0) -> Path | None:
    """``--reference``: ``auto`` (the digits world's cached reference, trained if missing), a
    folder (a model of the same family trained without the concept), or None."""
    return _resolve(
        spec, lambda: digits_reference(forget_classes, seed), "model folder", CLASS_RECIPE
    )


def training_cost(folder: Path) -> dict:
    """What the reference cost to train, as its ``world.json`` records it."""
    world_file = Path(folder) / "world.json"
    if not world_file.exists():
        return {}
    t = json.loads(world_file.read_text()).get("training", {})
    keys = ("steps", "seconds", "batch_size", "threads")
    keys += ("vae_steps", "unet_steps", "train_seconds", "excluded", "unet_training_images")
    return {k: t[k] for k in keys if k in t}
