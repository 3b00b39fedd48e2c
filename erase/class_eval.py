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


def _state_hash(unet) -> str:
    h = hashlib.sha256()
    for k, v in sorted(unet.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
        h.update(str(float(v.float().sum())).encode())
    return h.hexdigest()[:16]


def evaluate_class_erasure(
    unet_after, unet_before, scheduler, classifier, forget_classes, eval_cfg: dict, progress=False
) -> tuple[dict, dict, dict]:
    """Returns (metrics, images_before, images_after); ``before`` samples come from a cache."""
    classes = list(range(10))
    args = (
        eval_cfg["samples_per_class"],
        eval_cfg["guidance_scale"],
        eval_cfg["null_class"],
        eval_cfg["num_inference_steps"],
        eval_cfg["seed"],
    )
    key = hashlib.sha256(json.dumps([_state_hash(unet_before), args]).encode()).hexdigest()[:20]
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
    metrics = erasure_metrics(classifier, classifier, before, after, forget_classes)
    metrics["evaluation"] = {
        **eval_cfg,
        "judge": "independent digits CNN trained on real digits only (erase.embedded.classifier)",
        "fid": "digits-FID: Fréchet distance in the judge's penultimate features, generated "
        "remaining-class samples vs. all real digits of those classes",
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
