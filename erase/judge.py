"""The classifier that judges class erasure on any data: a ResNet-18 adapted to 32×32.

It is trained from scratch on the data's training split only (``erase-train-judge``), never on
generated images, so its verdict on samples is an outside opinion; its 512-d penultimate layer
is the feature space of the judge-FID. Saved as ``model.safetensors`` + ``judge_config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import EraseError

ARCHITECTURE = "resnet18-32x32"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "judge_config.json"
FEATURE_DIM = 512


def build_resnet18_32(num_classes: int, channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 (no pretrained weights) with a 3×3 stride-1 stem and no max-pool,
    the usual CIFAR adaptation: a 7×7/2 stem and a pool would shrink 32×32 to 8×8 at once."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


@torch.no_grad()
def predict_in_batches(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A classifier's predicted labels on the CPU, batched, in eval mode (its mode restored):
    the ``predict`` of every judge, the embedded digits classifier's included."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(x[i : i + batch_size].to(device)).argmax(-1).cpu()
        for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


class Judge(nn.Module):
    """Takes images in [-1, 1] of any size and 1 or 3 channels (as the DDPMs draw them) and
    maps them to the judge's own input: channels matched, resized, normalized."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.num_classes = int(config["num_classes"])
        self.image_size = int(config["image_size"])
        self.channels = int(config["channels"])
        self.feature_dim = FEATURE_DIM
        self.net = build_resnet18_32(self.num_classes, self.channels)
        norm = config.get("normalization") or {}
        mean = torch.tensor(norm.get("mean", [0.5] * self.channels), dtype=torch.float32)
        std = torch.tensor(norm.get("std", [0.5] * self.channels), dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.mean.device, torch.float32)
        if x.shape[1] != self.channels:
            x = (
                x.mean(1, keepdim=True)
                if self.channels == 1
                else x.expand(-1, self.channels, -1, -1)
            )
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True)
        return ((x.clamp(-1, 1) + 1) / 2 - self.mean) / self.std

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.relu(n.bn1(n.conv1(x)))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 512-d penultimate layer (the judge-FID's space)."""
        return self._trunk(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.fc(self.features(x))

    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        return predict_in_batches(self, x, batch_size)


def judge_config(class_names, image_size: int, channels: int, mean, std, **extra) -> dict:
    return {
        "architecture": ARCHITECTURE,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "image_size": int(image_size),
        "channels": int(channels),
        "input_range": "[-1, 1]",
        "normalization": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "feature_dim": FEATURE_DIM,
        **extra,
    }


def save_judge(judge: Judge, out_dir: str | Path) -> Path:
    """Weights and config into ``out_dir`` (callers build it inside ``erase.io.atomic_dir``)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in judge.net.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"architecture": ARCHITECTURE})
    (out / CONFIG_NAME).write_text(json.dumps(judge.config, indent=2) + "\n")
    return out


def load_judge(
    path: str | Path, num_classes: int | None = None, device: str | torch.device = "cpu"
) -> Judge:
    """A trained judge from ``erase-train-judge``'s folder; ``num_classes`` checks it fits the
    model it is to judge. Reads only safetensors."""
    from safetensors.torch import load_file

    folder = Path(path)
    hint = "train one with erase-train-judge --train_data DATA --output_dir DIR"
    if not folder.is_dir():
        raise EraseError(f"--judge {str(path)!r} is not a folder; {hint}")
    cfg_file, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not cfg_file.exists() or not weights.exists():
        raise EraseError(
            f"--judge {str(path)!r} lacks {CONFIG_NAME} or {WEIGHTS_NAME}: not a judge folder; {hint}"
        )
    try:
        cfg = json.loads(cfg_file.read_text())
        arch = cfg.get("architecture")
        for key in ("num_classes", "image_size", "channels"):
            int(cfg[key])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EraseError(
            f"{str(cfg_file)!r} is not a valid judge config ({exc!r}); {hint}"
        ) from None
    if arch != ARCHITECTURE:
        raise EraseError(
            f"--judge {str(path)!r} is a {arch!r}; this version reads {ARCHITECTURE!r} judges"
        )
    if num_classes is not None and int(cfg["num_classes"]) != int(num_classes):
        raise EraseError(
            f"--judge {str(path)!r} tells {cfg['num_classes']} classes apart, the model has "
            f"{num_classes}: train the judge on the same data as the model"
        )
    judge = Judge(cfg)
    try:
        state = load_file(str(weights))
        judge.net.load_state_dict(state)
    except Exception as exc:  # truncated file, wrong shapes, missing tensors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EraseError(
            f"cannot load the judge weights {str(weights)!r} ({first[:200]}); they do not match "
            f"{CONFIG_NAME}: retrain with erase-train-judge"
        ) from None
    return judge.to(device).eval()
