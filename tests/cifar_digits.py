"""Writes scikit-learn's real digits in CIFAR-10's python format (the layout users download).

32×32×3 uint8 rows (grey digits upsampled and repeated over RGB), ``data_batch_1..5`` from the
embedded digits train split, ``test_batch`` from its test split, ``batches.meta`` with the label
names "0".."9". Written with plain ``pickle``, as CIFAR's own files were.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _rows(images: torch.Tensor) -> np.ndarray:
    x = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).repeat(1, 3, 1, 1)
    return x.reshape(len(x), -1).numpy()


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_digits_cifar(root: str | Path) -> Path:
    """The folder ``root/cifar-10-batches-py``; returns it."""
    from erase.embedded.digits import digits_split

    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    s = digits_split(seed=0)
    train, test = _rows(s.train_images), _rows(s.test_images)
    for i, idx in enumerate(np.array_split(np.arange(len(train)), 5), start=1):
        _dump(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": [int(v) for v in s.train_labels[idx]],
                b"data": train[idx],
            },
        )
    _dump(
        folder / "test_batch",
        {b"batch_label": b"testing batch 1 of 1", b"labels": s.test_labels.tolist(), b"data": test},
    )
    _dump(
        folder / "batches.meta",
        {b"label_names": [str(i).encode() for i in range(10)], b"num_vis": 3072},
    )
    return folder
