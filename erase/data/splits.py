"""Train / held-out test splits of the class data, so a judge is scored on images it never saw.

CIFAR-10: ``data_batch_*`` / ``test_batch``. Digits: the embedded fixed split. An image folder:
its ``train/`` and ``test/`` subfolders when it has both, else a seeded, class-stratified split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import EraseError
from .class_data import (
    ClassData,
    _load_cifar_batch,
    load_cifar10,
    load_class_data,
    load_image_folder,
)


def _cifar_folder(root: Path) -> Path:
    return root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root


def is_cifar_folder(root: Path) -> bool:
    return any(_cifar_folder(root).glob("data_batch_*"))


def load_cifar10_test(root: Path, class_names: list[str]) -> ClassData:
    path = _cifar_folder(root) / "test_batch"
    if not path.exists():
        raise EraseError(
            f"no test_batch in {str(path.parent)!r}: the CIFAR-10 folder lacks its test split"
        )
    d = _load_cifar_batch(path)
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    images = torch.from_numpy(x).float() / 127.5 - 1.0
    labels = torch.tensor([int(v) for v in d[b"labels"]])
    return ClassData(images, labels, class_names, f"cifar10-test:{path.parent.name}")


def stratified_split(
    data: ClassData, test_fraction: float, seed: int
) -> tuple[ClassData, ClassData]:
    """A seeded split that keeps every class in both halves (at least one test image each)."""
    if not 0.0 < test_fraction < 1.0:
        raise EraseError(f"--test_fraction must be in (0, 1), got {test_fraction}")
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(data.num_classes):
        idx = torch.nonzero(data.labels == c).flatten()
        if len(idx) < 2:
            raise EraseError(
                f"class {data.class_names[c]!r} has {len(idx)} image(s); a train/test split "
                "needs at least 2 per class"
            )
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = min(len(idx) - 1, max(1, round(len(idx) * test_fraction)))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])

    def part(index: list[torch.Tensor], tag: str) -> ClassData:
        i = torch.cat(index).sort().values
        return ClassData(data.images[i], data.labels[i], data.class_names, f"{data.source}:{tag}")

    return part(train_idx, "train"), part(test_idx, "test")


def load_class_splits(
    spec: str | None, test_fraction: float = 0.2, seed: int = 0
) -> tuple[ClassData, ClassData, str]:
    """(train, test, how the test split was made) for ``spec`` as ``load_class_data`` reads it."""
    if spec in (None, "", "digits"):
        from ..embedded.digits import digits_split

        s = digits_split(seed=0)
        names = [str(i) for i in range(10)]
        return (
            ClassData(s.train_images, s.train_labels, names, "sklearn-digits:train"),
            ClassData(s.test_images, s.test_labels, names, "sklearn-digits:test"),
            "the embedded digits' fixed split (erase.embedded.digits.digits_split, seed 0)",
        )
    root = Path(spec)
    if root.is_dir() and is_cifar_folder(root):
        train = load_cifar10(root)
        return train, load_cifar10_test(root, train.class_names), "CIFAR-10 test_batch"
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = load_image_folder(root / "train"), load_image_folder(root / "test")
        if test.class_names != train.class_names:
            raise EraseError(
                f"{str(root)!r}: test/ has classes {test.class_names}, train/ "
                f"{train.class_names}; give both the same class subfolders"
            )
        return train, test, "the folder's test/ subfolder"
    data = load_class_data(spec)
    train, test = stratified_split(data, test_fraction, seed)
    return train, test, f"seeded stratified split (test_fraction {test_fraction}, seed {seed})"
