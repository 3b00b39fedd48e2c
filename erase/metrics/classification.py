"""Classifier-based erasure metrics for the class-conditional DDPM.

UA (unlearning accuracy) = 1 − accuracy on forget-class samples: the erased digit should no
longer be drawn. Retained accuracy and the FID on the remaining classes say what it cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..errors import EraseError
from .fid import fid_from_images


@torch.no_grad()
def predict_labels(classifier, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    if hasattr(classifier, "predict"):
        return classifier.predict(images, batch_size=batch_size).cpu()
    if isinstance(classifier, torch.nn.Module):
        classifier.eval()
    device = (
        next(classifier.parameters()).device if isinstance(classifier, torch.nn.Module) else "cpu"
    )
    out = [
        classifier(images[i : i + batch_size].to(device)).argmax(-1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def class_accuracy(classifier, images: torch.Tensor, labels) -> float:
    """Share of ``images`` the classifier assigns to their ``labels``."""
    labels = torch.as_tensor(labels, dtype=torch.long).flatten().cpu()
    if len(images) != len(labels):
        raise EraseError(f"{len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        return float("nan")
    return float((predict_labels(classifier, images) == labels).float().mean())


def _stack(
    images_by_class: Mapping[int, torch.Tensor], classes
) -> tuple[torch.Tensor, torch.Tensor]:
    imgs, labels = [], []
    for c in classes:
        x = images_by_class[c]
        imgs.append(x)
        labels.append(torch.full((len(x),), int(c), dtype=torch.long))
    return torch.cat(imgs), torch.cat(labels)


def erasure_metrics(
    classifier,
    feature_fn,
    images_by_class_before: Mapping[int, torch.Tensor] | None,
    images_by_class_after: Mapping[int, torch.Tensor],
    forget_classes: Sequence[int],
    real_images_by_class: Mapping[int, torch.Tensor] | None = None,
) -> dict:
    """UA, retained accuracy, per-class accuracy and digits-FID of the remaining classes.

    ``images_by_class_*`` map a class to the images generated when asking for it, by the
    original model (``before``, may be None) and the erased one (``after``). ``feature_fn`` is
    the FID feature space (e.g. the classifier itself: its ``features`` are used).
    ``real_images_by_class`` defaults to all real digits of each class.
    With ``images_by_class_before`` the same numbers for the original model come back under
    ``"before"``, and ``fid_remaining_before_vs_after`` compares the two models directly.
    """
    forget = sorted({int(c) for c in forget_classes})
    classes = sorted(int(c) for c in images_by_class_after)
    missing = [c for c in forget if c not in classes]
    if missing:
        raise EraseError(f"no generated images for forget classes {missing}")
    remaining = [c for c in classes if c not in forget]

    def summary(by_class: Mapping[int, torch.Tensor]) -> dict:
        per_class = {
            c: class_accuracy(classifier, by_class[c], [c] * len(by_class[c])) for c in classes
        }
        out = {"per_class_accuracy": per_class}
        x_f, y_f = _stack(by_class, forget)
        out["forget_accuracy"] = class_accuracy(classifier, x_f, y_f)
        out["unlearning_accuracy"] = 1.0 - out["forget_accuracy"]
        if remaining:
            x_r, y_r = _stack(by_class, remaining)
            out["retained_accuracy"] = class_accuracy(classifier, x_r, y_r)
            out["fid_remaining"] = fid_from_images(real_remaining, x_r, feature_fn)
        else:
            out["retained_accuracy"] = float("nan")
            out["fid_remaining"] = float("nan")
        return out

    real_remaining = None
    if remaining:
        if real_images_by_class is None:
            from ..embedded.digits import real_digits_of

            real_remaining = real_digits_of(remaining)
        else:
            real_remaining = torch.cat([real_images_by_class[c] for c in remaining])

    result = summary(images_by_class_after)
    result["forget_classes"] = forget
    result["remaining_classes"] = remaining
    if images_by_class_before is not None:
        result["before"] = summary(images_by_class_before)
        if remaining:
            before_r, _ = _stack(images_by_class_before, remaining)
            after_r, _ = _stack(images_by_class_after, remaining)
            result["fid_remaining_before_vs_after"] = fid_from_images(before_r, after_r, feature_fn)
    return result
