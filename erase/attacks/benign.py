"""Benign fine-tuning: does an erased concept come back when the model is only tuned on data
WITHOUT it? (Issue 27: an erasure that is a thin layer over knowledge still there may resurface
under any fine-tuning, not only under the attacker's images.)

The data, built here and handed to the relearning harness in place of the concept's images:

- class DDPM: ``n_images`` real training images of the other classes (the retain data), or a
  ``--benign_images`` folder laid out ``ROOT/<class index>/<images>`` that must not hold the
  forget class;
- text-to-image: the concept's retain prompts (the default retain set when it has none) with
  the original model's images of them, or a ``--benign_images`` folder of images, each with
  its caption in a ``.txt`` file of the same name (the empty prompt when there is none).

The judged samples are the concept's own (class ``k`` / its forget prompts), exactly as in
relearning, so the two curves can be laid side by side.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import EraseError


def class_benign_set(k: int, n_images: int, folder: str | None, size: int, channels: int):
    """``{"targets": x0, "train_labels": labels}`` for ``relearn_classes``: no class ``k``."""
    from ..data.class_data import ClassData, fit_to_model, load_image_folder

    if folder is None:
        from ..embedded.digits import digits_split

        split = digits_split(seed=0)
        keep = split.train_labels != k
        x, y = split.train_images[keep][:n_images], split.train_labels[keep][:n_images]
    else:
        data = load_image_folder(Path(folder))
        try:
            index = torch.tensor([int(name) for name in data.class_names])
        except ValueError:
            raise EraseError(
                f"--benign_images {folder!r}: name its subfolders by class index "
                f"(ROOT/0/, ROOT/1/, ...), found {data.class_names}"
            ) from None
        x, y = data.images, index[data.labels]
        if (y == k).any():
            raise EraseError(
                f"--benign_images {folder!r} holds class {k}, the erased one; benign data "
                "must not show the concept (remove that subfolder)"
            )
    x = fit_to_model(ClassData(x, y, [], "benign"), channels, size).images
    return {"targets": x, "train_labels": y.long()}


def prompt_benign_set(concept, n_images: int, folder: str | None, pipe, device) -> dict:
    """``{"train_prompts": ...}`` (the original draws their images), or the user's images as
    ``targets`` with their captions, for ``relearn_prompts``."""
    if folder is None:
        from ..concepts import DEFAULT_RETAIN

        return {"train_prompts": list(concept.retain or DEFAULT_RETAIN)}
    from ..concept_data import encode_image_folder
    from ..images import list_images

    files = list_images(folder)
    captions = [_caption(f) for f in files]
    hit = [c for c in captions if c in concept.forget]
    if hit:
        raise EraseError(
            f"--benign_images {folder!r}: caption {hit[0]!r} is one of the concept's forget "
            "prompts; benign data must not show the concept"
        )
    targets = encode_image_folder(pipe, folder, device)
    return {"targets": targets, "train_prompts": captions, "n_images": len(files)}


def _caption(image: Path) -> str:
    txt = image.with_suffix(".txt")
    return txt.read_text().strip() if txt.is_file() else ""
