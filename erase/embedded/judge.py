"""An independent judge for the tiny text-to-image world: which digit, which style.

It is trained on the real digits rendered in each style, never on diffusion samples, so its
verdicts on generated images measure the generator rather than echo it. Its penultimate
features are the feature space of the digits-FID.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import EraseError
from .digits import ASSETS_DIR, digits_split, writable_asset_location
from .styles import IMAGE_SIZE, STYLES, render_all_styles

JUDGE_ASSET = "tiny_sd_judge.safetensors"
FEATURE_DIM = 128


class DigitStyleJudge(nn.Module):
    """A small CNN on 16×16 grey images in [-1, 1] with a digit head and a style head."""

    def __init__(self, num_digits: int = 10, num_styles: int = len(STYLES), width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.GroupNorm(8, width),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * width),
            nn.GELU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.GroupNorm(8, 4 * width),
            nn.GELU(),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(4 * width * (IMAGE_SIZE // 4) ** 2, FEATURE_DIM),
            nn.GELU(),
        )
        self.digit_head = nn.Linear(FEATURE_DIM, num_digits)
        self.style_head = nn.Linear(FEATURE_DIM, num_styles)

    def features(self, x) -> torch.Tensor:
        """``[N, 128]`` penultimate features (the digits-FID feature space)."""
        return self.body(to_judge_input(x, device=self.digit_head.weight.device))

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.digit_head(f), self.style_head(f)


def to_judge_input(images, device=None) -> torch.Tensor:
    """PIL images, a list of tensors, or ``[N,C,H,W]`` in [-1, 1] → ``[N,1,16,16]`` grey in [-1, 1].

    Tensors with values in [0, 1] (e.g. a pipeline's ``output_type="pt"``) must be mapped to
    [-1, 1] by the caller: the range cannot be guessed reliably from one batch.
    """
    if isinstance(images, torch.Tensor):
        x = images
        if x.dim() == 3:
            x = x.unsqueeze(0)
    else:
        images = list(images)
        if not images:
            raise EraseError("judge_images got no images; pass at least one")
        if isinstance(images[0], torch.Tensor):
            x = torch.stack([im if im.dim() == 3 else im.unsqueeze(0) for im in images])
        else:
            arrs = [np.asarray(im.convert("L"), dtype=np.float32) / 127.5 - 1.0 for im in images]
            x = torch.from_numpy(np.stack(arrs)).unsqueeze(1)
    if x.dim() != 4:
        raise EraseError(f"judge expects images shaped [N,C,H,W], got {tuple(x.shape)}")
    x = x.float()
    if x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
    return x.to(device) if device is not None else x


def styled_digits(split: str = "train", seed: int = 0):
    """Real digits of one split in every style: ``(images [S*N,1,16,16], digits, styles)``."""
    s = digits_split(seed)
    images, labels = (
        (s.train_images, s.train_labels) if split == "train" else (s.test_images, s.test_labels)
    )
    rendered = render_all_styles(images)  # [S, N, 1, H, W]
    n_styles, n = rendered.shape[:2]
    digits = labels.repeat(n_styles)
    styles = torch.arange(n_styles).repeat_interleave(n)
    return rendered.flatten(0, 1), digits, styles


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts of up to 1 px, contrast jitter and noise, so generated images are not off-manifold."""
    n = x.shape[0]
    pad = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2,), generator=gen).tolist()
    x = pad[..., dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE]
    scale = 1.0 + 0.15 * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1)
    x = x * scale + 0.05 * torch.randn(n, 1, 1, 1, generator=gen)
    return x + 0.08 * torch.randn(x.shape, generator=gen)


@torch.no_grad()
def judge_accuracy(judge: DigitStyleJudge, split: str = "test", seed: int = 0) -> dict:
    """Digit and style accuracy on the real, held-out digits of the judge's split."""
    x, d, s = styled_digits(split, seed)
    judge.eval()
    logits = [judge(x[i : i + 1024]) for i in range(0, len(x), 1024)]
    dp = torch.cat([lg[0] for lg in logits]).argmax(1)
    sp = torch.cat([lg[1] for lg in logits]).argmax(1)
    return {
        "digit_accuracy": (dp == d).float().mean().item(),
        "style_accuracy": (sp == s).float().mean().item(),
        "n_images": len(x),
    }


def train_judge(seed: int = 0, steps: int = 1000, batch_size: int = 128, lr: float = 2e-3):
    """Train the judge on the train split of the real digits (all styles); returns (judge, metrics)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, d, s = styled_digits("train", seed=0)
    judge = DigitStyleJudge()
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    judge.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        ld, ls = judge(_augment(x[idx], gen))
        loss = F.cross_entropy(ld, d[idx], label_smoothing=0.05)
        loss = loss + F.cross_entropy(ls, s[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    judge.eval()
    return judge, judge_accuracy(judge, "test")


def save_judge(judge: DigitStyleJudge, path: str | os.PathLike, metrics: dict | None = None):
    from safetensors.torch import save_file

    from ..io import atomic_write_bytes

    meta = {"styles": ",".join(STYLES), "image_size": str(IMAGE_SIZE)}
    meta.update({k: str(v) for k, v in (metrics or {}).items()})
    state = {k: v.detach().contiguous().cpu() for k, v in judge.state_dict().items()}
    tmp = Path(str(path) + ".tmpsave")
    save_file(state, str(tmp), metadata=meta)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def judge_path() -> Path:
    """The committed judge asset; trained and cached (a minute on CPU) if it is missing."""
    committed = ASSETS_DIR / JUDGE_ASSET
    if committed.exists():
        return committed
    target = writable_asset_location(JUDGE_ASSET)
    if not target.exists():
        judge, metrics = train_judge()
        save_judge(judge, target, metrics)
    return target


_CACHE: dict = {}


def load_judge(path: str | os.PathLike | None = None) -> DigitStyleJudge:
    """The judge in eval mode, from safetensors (the committed asset by default)."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else judge_path()
    key = str(path.resolve())
    if key in _CACHE:
        return _CACHE[key]
    if not path.exists():
        raise EraseError(
            f"judge weights {str(path)!r} not found; run scripts/train_tiny_sd.py to create them"
        )
    judge = DigitStyleJudge()
    try:
        judge.load_state_dict(load_file(str(path)))
    except Exception as exc:  # a truncated file or a judge of another shape
        raise EraseError(
            f"cannot load judge weights {str(path)!r} ({exc.__class__.__name__}); "
            "re-create them with scripts/train_tiny_sd.py"
        ) from None
    judge.eval()
    _CACHE[key] = judge
    return judge


@torch.no_grad()
def judge_images(images, judge: DigitStyleJudge | None = None, batch_size: int = 512):
    """``(digit_pred [N], style_pred [N])`` for PIL images or ``[N,C,H,W]`` tensors in [-1, 1]."""
    judge = judge or load_judge()
    x = to_judge_input(images)
    dps, sps = [], []
    for i in range(0, len(x), batch_size):
        ld, ls = judge(x[i : i + batch_size])
        dps.append(ld.argmax(1))
        sps.append(ls.argmax(1))
    return torch.cat(dps), torch.cat(sps)
