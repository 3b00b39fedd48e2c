"""scikit-learn's handwritten digits (1,797 images, 8×8, 10 classes) as tensors in [-1, 1].

The data ships inside scikit-learn, so the embedded world needs no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import EraseError

NUM_CLASSES = 10
IMAGE_SIZE = 8
_MAX_VALUE = 16.0  # load_digits stores intensities as integers 0..16


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ``(images [N,1,8,8] float32 in [-1,1], labels [N] int64)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EraseError(
            "scikit-learn is needed for the embedded digits world; pip install scikit-learn"
        ) from None
    data = load_digits()
    images = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1)
    images = images / _MAX_VALUE * 2.0 - 1.0
    labels = torch.as_tensor(data.target, dtype=torch.long)
    return images, labels


@dataclass
class DigitsSplit:
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    train_index: torch.Tensor
    test_index: torch.Tensor


def digits_split(seed: int = 0, test_fraction: float = 0.25) -> DigitsSplit:
    """A fixed, class-stratified train/test split: the same seed always gives the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise EraseError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = load_digits_images()
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(NUM_CLASSES):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = round(len(idx) * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_index = torch.cat(train_idx).sort().values
    test_index = torch.cat(test_idx).sort().values
    return DigitsSplit(
        train_images=images[train_index],
        train_labels=labels[train_index],
        test_images=images[test_index],
        test_labels=labels[test_index],
        train_index=train_index,
        test_index=test_index,
    )


def real_digits_of(classes, split: str = "all", seed: int = 0) -> torch.Tensor:
    """Real digits whose label is in ``classes`` (``split``: "all", "train" or "test")."""
    if split == "all":
        images, labels = load_digits_images()
    else:
        s = digits_split(seed)
        if split == "train":
            images, labels = s.train_images, s.train_labels
        elif split == "test":
            images, labels = s.test_images, s.test_labels
        else:
            raise EraseError(f"split must be 'all', 'train' or 'test', got {split!r}")
    mask = torch.isin(labels, torch.as_tensor(list(classes), dtype=torch.long))
    return images[mask]


# -- where the embedded world's weights live ----------------------------------------------------

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


def cache_dir() -> Path:
    """User cache for assets that cannot be written into the package (``$ERASE_CACHE_DIR``)."""
    root = os.environ.get("ERASE_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "erase"


def writable_asset_location(name: str) -> Path:
    """``assets/<name>`` if the package directory is writable, else the user cache."""
    try:
        ASSETS_DIR.mkdir(parents=True, exist_ok=True)
        if os.access(ASSETS_DIR, os.W_OK):
            return ASSETS_DIR / name
    except OSError:
        pass
    return cache_dir() / name
