"""Before/after evaluation of a class erasure on the embedded digits world.

The original model's numbers depend only on the model and the evaluation settings, so they are
cached on disk (keyed by a hash of both) and shared by every run and method.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .embedded.digits import cache_dir
from .io import atomic_write_json
from .metrics.classification import erasure_metrics
from .sampling import sample_class_conditional


def images_by_class(
    unet,
    scheduler,
    classes,
    n_per_class,
    guidance_scale,
    null_class,
    steps,
    seed,
    batch_size=500,
    progress=False,
) -> dict[int, torch.Tensor]:
    """``n_per_class`` samples per class in one batched, seeded pass (one progress bar)."""
    classes = [int(c) for c in classes]
    labels = torch.tensor(classes).repeat_interleave(n_per_class)
    images = sample_class_conditional(
        unet,
        scheduler,
        labels,
        guidance_scale=guidance_scale,
        null_class=null_class,
        num_inference_steps=steps,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    return {c: images[i * n_per_class : (i + 1) * n_per_class] for i, c in enumerate(classes)}


def state_hash(module) -> str:
    """A fingerprint of a module's weights (each tensor's first bytes and sum): cache keys."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
        h.update(str(float(v.float().sum())).encode())
    return h.hexdigest()[:16]


def evaluate_class_erasure(
    unet_after,
    unet_before,
    scheduler,
    classifier,
    forget_classes,
    eval_cfg: dict,
    progress=False,
    *,
    classes=None,
    real_images_by_class=None,
    judge_note: str | None = None,
) -> tuple[dict, dict, dict]:
    """Returns (metrics, images_before, images_after); ``before`` samples come from a cache.

    Defaults are the digits world's (10 classes, the digits classifier, all real digits); any
    judge (e.g. :func:`erase.judge.load_judge`) with the real images of its data fits as well."""
    default_classes = classes is None
    classes = list(range(10)) if default_classes else [int(c) for c in classes]
    args = (
        eval_cfg["samples_per_class"],
        eval_cfg["guidance_scale"],
        eval_cfg["null_class"],
        eval_cfg["num_inference_steps"],
        eval_cfg["seed"],
    )
    key_parts = [state_hash(unet_before), args] + ([] if default_classes else [classes])
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:20]
    cache = cache_dir() / "eval" / f"before-{key}.pt"
    before = None
    if cache.exists():
        try:
            before = torch.load(cache, weights_only=True)
        except Exception:
            before = None
    if before is None:
        before = images_by_class(unet_before, scheduler, classes, *args, progress=progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        import io as _io

        buf = _io.BytesIO()
        torch.save(before, buf)
        from .io import atomic_write_bytes

        atomic_write_bytes(cache, buf.getvalue())
    after = images_by_class(unet_after, scheduler, classes, *args, progress=progress)
    metrics = erasure_metrics(
        classifier, classifier, before, after, forget_classes, real_images_by_class
    )
    metrics["evaluation"] = {
        **eval_cfg,
        "judge": judge_note
        or "independent digits CNN trained on real digits only (erase.embedded.classifier)",
        "fid": "Fréchet distance in the judge's penultimate features, generated "
        "remaining-class samples vs. the real training images of those classes"
        + ("" if real_images_by_class is not None else " (all real digits: a digits-FID)"),
    }
    return metrics, before, after


def class_grid(before: dict, after: dict, n_cols: int = 8, title_after: str = "erased"):
    """Before | after, rows = classes, the same seeds in the same cells."""
    from PIL import Image

    from .grids import comparison_grid

    def pil(x):
        arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if arr.shape[0] == 1:
            return Image.fromarray(arr[0].numpy(), mode="L")
        return Image.fromarray(arr.permute(1, 2, 0).numpy())

    classes = sorted(after)
    n_cols = min(n_cols, *(len(before[c]) for c in classes), *(len(after[c]) for c in classes))
    rows_b = [[pil(before[c][i]) for i in range(n_cols)] for c in classes]
    rows_a = [[pil(after[c][i]) for i in range(n_cols)] for c in classes]
    labels = [f"class {c}" for c in classes]
    cols = [f"#{i}" for i in range(n_cols)]
    return comparison_grid([("original", rows_b), (title_after, rows_a)], labels, cols, cell=40)


def write_metrics(path: Path, metrics: dict) -> None:
    atomic_write_json(path, metrics)


def add_inception_fid(
    metrics: dict, before: dict, after: dict, real_by_class: dict, device="cpu"
) -> dict:
    """``fid_inception`` (standard 2048-d Inception FID, generated remaining-class samples vs.
    the real remaining-class training images) after and before; a ``note`` when the weights
    cannot be had (offline), instead of failing the run."""
    from .errors import EraseError
    from .metrics.fid import fid_from_images, inception_feature_extractor

    remaining = metrics.get("remaining_classes") or []
    if not remaining:
        return metrics
    try:
        extractor = inception_feature_extractor().to(device)
    except EraseError as exc:
        metrics["fid_inception"] = None
        if "before" in metrics:
            metrics["before"]["fid_inception"] = None
        metrics["note"] = f"fid_inception not computed: {exc}"
        return metrics
    real = torch.cat([real_by_class[c] for c in remaining])
    for target, images in ((metrics, after), (metrics.get("before"), before)):
        if target is not None and images is not None:
            fake = torch.cat([images[c] for c in remaining])
            target["fid_inception"] = fid_from_images(real, fake, extractor, batch_size=64)
    metrics["evaluation"]["fid_inception"] = (
        "2048-d Inception-v3 pool3 (torch-fidelity weights), remaining-class samples vs. "
        f"{len(real)} real remaining-class training images"
    )
    return metrics
