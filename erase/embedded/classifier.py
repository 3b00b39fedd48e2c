"""An independent digits classifier: judges what the DDPM draws and gives the digits-FID its features.

It never sees generated images and shares nothing with the diffusion model, so its verdict on
samples is an outside opinion. Trained on the train split of :func:`digits_split` only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import EraseError
from .digits import ASSETS_DIR, NUM_CLASSES, digits_split, writable_asset_location

ASSET_NAME = "digits_classifier.safetensors"
FEATURE_DIM = 64


class DigitsClassifier(nn.Module):
    """Small CNN on [N,1,8,8] images in [-1,1]; ``features`` is the 64-d penultimate layer."""

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 2x2
            nn.Flatten(),
            nn.Linear(128 * 4, feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.to(self.head.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted labels, in eval mode, batched."""
        from ..judge import predict_in_batches

        return predict_in_batches(self, x, batch_size)


def _random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels (background -1 fills in): robustness to
    the small misalignments that generated digits have."""
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    size = x.shape[-1]
    rows = (dy[:, None] + torch.arange(size)[None, :])[:, :, None].expand(n, size, size)
    cols = (dx[:, None] + torch.arange(size)[None, :])[:, None, :].expand(n, size, size)
    idx = torch.arange(n)[:, None, None].expand(n, size, size)
    return padded[idx, 0, rows, cols].unsqueeze(1)


def classifier_accuracy(
    model: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor
) -> float:
    pred = model.predict(images)
    return float((pred == labels.cpu()).float().mean()) if len(labels) else float("nan")


def train_digits_classifier(
    seed: int = 0, epochs: int = 60, batch_size: int = 64, lr: float = 2e-3, progress: bool = False
) -> DigitsClassifier:
    """Train on the real train split (seeded, CPU, ~10 s); ``model.test_accuracy`` is set."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    split = digits_split(seed=0)
    x, y = split.train_images, split.train_labels
    model = DigitsClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    model.train()
    for _ in tqdm(range(epochs), desc="classifier", disable=not progress):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb = _random_shift(x[idx], gen)
            xb = xb + 0.05 * torch.randn(xb.shape, generator=gen)
            loss = F.cross_entropy(model(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    model.test_accuracy = classifier_accuracy(model, split.test_images, split.test_labels)
    model.train_seed = seed
    return model


def save_digits_classifier(model: DigitsClassifier, path: str | Path) -> None:
    """Save as safetensors (atomically), with its test accuracy in the metadata."""
    import os
    import tempfile

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "feature_dim": str(model.feature_dim),
        "num_classes": str(model.num_classes),
        "test_accuracy": json.dumps(getattr(model, "test_accuracy", None)),
        "seed": json.dumps(getattr(model, "train_seed", None)),
        "input": "[N,1,8,8] float in [-1,1] (sklearn digits / 16 * 2 - 1)",
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a cached asset is shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def default_classifier_path() -> Path:
    return ASSETS_DIR / ASSET_NAME


def load_digits_classifier(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> DigitsClassifier:
    """Load the classifier (eval mode) from safetensors.

    With ``path=None`` the committed asset is used; if it is missing, the classifier is trained
    (seed 0) and cached in the package's assets or, if that is read-only, in ``~/.cache/erase``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if path is None:
        path = default_classifier_path()
        if not path.exists():
            cached = writable_asset_location(ASSET_NAME)
            if not cached.exists():
                print(
                    f"digits classifier asset missing; training it (seed 0, ~10 s) -> {cached}",
                    file=sys.stderr,
                )
                model = train_digits_classifier(seed=0)
                save_digits_classifier(model, cached)
            path = cached
    path = Path(path)
    if not path.exists():
        raise EraseError(
            f"digits classifier weights not found at {str(path)!r}; "
            "pass an existing .safetensors file or run scripts/train_toy.py"
        )
    if path.suffix != ".safetensors":
        raise EraseError(f"digits classifier must be a .safetensors file, got {str(path)!r}")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    model = DigitsClassifier(
        feature_dim=int(meta.get("feature_dim", FEATURE_DIM)),
        num_classes=int(meta.get("num_classes", NUM_CLASSES)),
    )
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise EraseError(
            f"{str(path)!r} is not a DigitsClassifier checkpoint ({str(exc).splitlines()[0]}); "
            "regenerate it with scripts/train_toy.py"
        ) from None
    model.test_accuracy = json.loads(meta.get("test_accuracy", "null"))
    return model.to(device).eval()
