"""UnlearnCanvas metrics: UA, IRA, CRA from style and object predictions.

Definitions follow the benchmark's evaluation code: accuracies are taken per concept and
then averaged over concepts (macro), and

- UA  = 1 − accuracy of the *primary* classifier on the images of each unlearned concept;
- IRA = primary accuracy on the other concepts of the same domain (in-domain retain);
- CRA = accuracy of the *other* domain's classifier on its concepts (cross-domain retain),
  over every generated image of that concept, the unlearned style's images included.

For style unlearning the primary classifier is the style classifier (51-way ViT-L/16 in the
benchmark), the other is the 20-way object classifier; for object unlearning the roles swap.
Values are fractions in [0, 1] (the benchmark prints percentages).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import EraseError

PROMPT_TEMPLATE = "A {object} image in {style} style."
DEFAULT_SEEDS = (188, 288, 588, 688, 888)
DEFAULT_ARCH = "vit_large_patch16_224"


def unlearncanvas_prompt(obj: str, style: str, template: str = PROMPT_TEMPLATE) -> str:
    """The benchmark's prompt; style names are written with spaces ("Artist_Sketch" → "Artist Sketch")."""
    return template.format(object=obj, style=style.replace("_", " "))


def image_filename(style: str, obj: str, seed: int, ext: str = "jpg") -> str:
    """The benchmark's file naming, ``{style}_{object}_seed{seed}.jpg``."""
    return f"{style}_{obj}_seed{seed}.{ext}"


def generation_plan(
    styles: Sequence[str],
    objects: Sequence[str],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    template: str = PROMPT_TEMPLATE,
    ext: str = "jpg",
) -> list[dict]:
    """Every (style, object, seed) with its prompt and file name, in a fixed order."""
    return [
        {
            "style": st,
            "object": ob,
            "seed": int(seed),
            "prompt": unlearncanvas_prompt(ob, st, template),
            "filename": image_filename(st, ob, seed, ext),
        }
        for st in styles
        for seed in seeds
        for ob in objects
    ]


@dataclass(frozen=True)
class Prediction:
    """One generated image: the style and object it was asked for, and what was recognised."""

    style: str
    object: str
    pred_style: str
    pred_object: str


def per_concept_accuracy(records: Sequence[Prediction], domain: str) -> dict[str, float]:
    """Accuracy of the ``domain`` ("style" or "object") classifier, per asked concept."""
    if domain not in ("style", "object"):
        raise EraseError(f"domain must be 'style' or 'object', got {domain!r}")
    hits: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        truth = getattr(r, domain)
        counts[truth] += 1
        hits[truth] += getattr(r, f"pred_{domain}") == truth
    return {c: hits[c] / counts[c] for c in counts}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def unlearncanvas_scores(
    records: Sequence[Prediction],
    unlearn: Sequence[str] | str,
    *,
    domain: str = "style",
    retain: Sequence[str] | None = None,
    cross_retain: Sequence[str] | None = None,
) -> dict:
    """UA, IRA and CRA (fractions; ``None`` where no image informs them), with per-concept values.

    ``retain`` defaults to every other concept of ``domain`` seen in ``records``;
    ``cross_retain`` to every concept of the other domain seen in ``records``.
    """
    if not records:
        raise EraseError("no predictions to score")
    unlearn = [unlearn] if isinstance(unlearn, str) else list(unlearn)
    other = "object" if domain == "style" else "style"
    primary = per_concept_accuracy(records, domain)
    secondary = per_concept_accuracy(records, other)
    missing = [u for u in unlearn if u not in primary]
    if missing:
        raise EraseError(
            f"no images of the unlearned {domain}(s) {', '.join(missing)} among the predictions"
        )
    retain = [c for c in primary if c not in unlearn] if retain is None else list(retain)
    cross_retain = list(secondary) if cross_retain is None else list(cross_retain)
    ua = {u: 1.0 - primary[u] for u in unlearn}
    ira = {c: primary[c] for c in retain if c in primary}
    cra = {c: secondary[c] for c in cross_retain if c in secondary}
    return {
        "UA": _mean(list(ua.values())),
        "IRA": _mean(list(ira.values())),
        "CRA": _mean(list(cra.values())),
        "domain": domain,
        "unlearn": ua,
        "retain": ira,
        "cross_retain": cra,
        "n_images": len(records),
        "averaging": "per-concept accuracy, then mean over concepts (as the benchmark)",
    }


# -- classifiers -----------------------------------------------------------------------------


def _unwrap_state_dict(obj) -> dict:
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise EraseError("the classifier checkpoint holds no state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_vit_classifier(
    path: str | os.PathLike, num_classes: int, arch: str = DEFAULT_ARCH, device: str = "cpu"
):
    """A timm ViT classifier from a user checkpoint (safetensors or ``torch.save``).

    The benchmark's checkpoints are ``{"model_state_dict": ...}`` for
    ``vit_large_patch16_224`` with a ``Linear(1024, num_classes)`` head. ``torch.load`` runs
    with ``weights_only=True``. A checkpoint of another shape is one ``EraseError``.
    """
    import timm
    import torch

    path = Path(path)
    if not path.is_file():
        raise EraseError(f"classifier checkpoint {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EraseError(
            f"cannot read classifier checkpoint {str(path)!r} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    state = _unwrap_state_dict(state)
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as exc:
        raise EraseError(f"unknown timm architecture {arch!r}: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc)[:200])
        raise EraseError(
            f"classifier checkpoint {str(path)!r} does not fit a {arch} with {num_classes} "
            f"classes ({first}); check --arch and the style/object name lists"
        ) from None
    return model.to(device).eval()


class NamedClassifier:
    """A classifier over named classes that maps PIL images to names."""

    def __init__(self, model, names: Sequence[str], image_size: int = 224, device: str = "cpu"):
        from torchvision import transforms

        self.model, self.names, self.device = model, list(names), device
        # the benchmark's preprocessing: resize to 224, [0, 1] → [-1, 1]
        self.transform = transforms.Compose(
            [
                transforms.Resize((image_size, image_size)),
                transforms.ToTensor(),
                transforms.Normalize([0.5], [0.5]),
            ]
        )

    def predict(self, images: Sequence, batch_size: int = 16) -> list[str]:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = torch.stack(
                    [self.transform(im.convert("RGB")) for im in images[i : i + batch_size]]
                )
                out.extend(self.model(x.to(self.device)).argmax(1).tolist())
        return [self.names[j] for j in out]


class EmbeddedJudgeClassifier:
    """The embedded world's digit/style judge under the same interface (digits are the objects)."""

    def __init__(self, head: str):
        from ..embedded.styles import DIGIT_WORDS, STYLES

        if head not in ("style", "object"):
            raise EraseError(f"head must be 'style' or 'object', got {head!r}")
        self.head = head
        self.names = list(STYLES) if head == "style" else list(DIGIT_WORDS)

    def predict(self, images: Sequence, batch_size: int = 512) -> list[str]:
        from ..embedded.judge import judge_images

        digits, styles = judge_images(list(images), batch_size=batch_size)
        idx = styles if self.head == "style" else digits
        return [self.names[j] for j in idx.tolist()]


def predict_records(
    items: Sequence[dict], images: Sequence, style_classifier, object_classifier
) -> list[Prediction]:
    """Run both classifiers on images aligned with ``items`` (each with "style" and "object")."""
    if len(items) != len(images):
        raise EraseError(f"{len(items)} plan entries but {len(images)} images")
    ps = style_classifier.predict(images)
    po = object_classifier.predict(images)
    return [
        Prediction(style=it["style"], object=it["object"], pred_style=s, pred_object=o)
        for it, s, o in zip(items, ps, po)
    ]


def predictions_to_json(records: Sequence[Prediction]) -> list[dict]:
    return [asdict(r) for r in records]
