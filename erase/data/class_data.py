"""Labelled images for class erasure: the embedded digits, CIFAR-10 on disk, or an image folder.

CIFAR-10's python batches are pickles. They are read with an unpickler that only admits the
numpy array reconstructors the format needs, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import EraseError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass
class ClassData:
    images: torch.Tensor  # [N, C, H, W] float32 in [-1, 1]
    labels: torch.Tensor  # [N] int64
    class_names: list[str]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def _load_cifar_batch(path: Path) -> dict:
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:
        raise EraseError(
            f"{str(path)!r} is not a CIFAR-10 python batch ({exc}); pass the extracted "
            "'cifar-10-batches-py' folder"
        ) from None


def load_cifar10(root: Path) -> ClassData:
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    files = sorted(folder.glob("data_batch_*"))
    if not files:
        raise EraseError(f"no CIFAR-10 data_batch_* files in {str(folder)!r}")
    xs, ys = [], []
    for f in files:
        d = _load_cifar_batch(f)
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(int(v) for v in d[b"labels"])
    names = [f"class_{i}" for i in range(10)]
    meta = folder / "batches.meta"
    if meta.exists():
        names = [n.decode() for n in _load_cifar_batch(meta)[b"label_names"]]
    x = torch.from_numpy(np.concatenate(xs)).float() / 127.5 - 1.0
    return ClassData(x, torch.tensor(ys), names, f"cifar10:{folder.name}")


def load_image_folder(root: Path) -> ClassData:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise EraseError(
            f"{str(root)!r} has no class subfolders; lay it out as ROOT/<class name>/<image files>"
        )
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    arr = np.array(im.convert("RGB"), dtype=np.uint8)  # writable copy
            except (UnidentifiedImageError, OSError) as exc:
                raise EraseError(
                    f"cannot read image {str(f)!r} ({exc}); remove or replace it"
                ) from None
            xs.append(torch.from_numpy(arr).permute(2, 0, 1).float() / 127.5 - 1.0)
            ys.append(label)
    if not xs:
        raise EraseError(
            f"no images found under {str(root)!r} (looked for {sorted(IMAGE_SUFFIXES)})"
        )
    sizes = {tuple(x.shape) for x in xs}
    if len(sizes) > 1:
        xs = [F.interpolate(x[None], size=xs[0].shape[-2:], mode="bilinear")[0] for x in xs]
    return ClassData(torch.stack(xs), torch.tensor(ys), classes, f"folder:{root.name}")


def load_digits_data() -> ClassData:
    from ..embedded.digits import load_digits_images

    images, labels = load_digits_images()
    return ClassData(images, labels, [str(i) for i in range(10)], "sklearn-digits")


def load_class_data(spec: str | None) -> ClassData:
    """``None``/``"digits"`` → the embedded digits; else a CIFAR-10 folder or an image folder."""
    if spec in (None, "", "digits"):
        return load_digits_data()
    root = Path(spec)
    if not root.is_dir():
        raise EraseError(f"--train_data {spec!r} is not a folder; pass a CIFAR-10 or image folder")
    if (root / "cifar-10-batches-py").is_dir() or any(root.glob("data_batch_*")):
        return load_cifar10(root)
    if (root / "train").is_dir() and (root / "test").is_dir():  # a folder with its own split
        return load_image_folder(root / "train")
    return load_image_folder(root)


def fit_to_model(data: ClassData, channels: int, size: int) -> ClassData:
    """Resize and match channels to the UNet's ``in_channels`` × ``sample_size``."""
    x = data.images
    if x.shape[1] != channels:
        if channels == 1:
            x = x.mean(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)
        else:
            raise EraseError(f"cannot map {x.shape[1]}-channel images to a {channels}-channel UNet")
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp(-1, 1)
    return ClassData(x.contiguous(), data.labels, data.class_names, data.source)
