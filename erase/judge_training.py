"""Training the judge from scratch on a training split (seeded, resumable by re-running).

Augmentation is a random crop (reflect-padded shift) and, where it makes sense, a horizontal
flip: a mirrored 3 or 7 is not a 3 or 7, so flips are off for digits by default.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .data.class_data import ClassData
from .judge import Judge, judge_config

DIGIT_NAMES = [str(i) for i in range(10)]


def default_flip(data: ClassData) -> bool:
    """Flip unless the classes are the ten digits (the embedded digits or digits in CIFAR form)."""
    return not (data.source.startswith("sklearn-digits") or data.class_names == DIGIT_NAMES)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of images in [-1, 1], on the [0, 1] scale."""
    x = (images.float() + 1) / 2
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).clamp_min(1e-3).tolist()


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Each image shifted by up to ``pad`` pixels (reflect padding), one gather for the batch."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, c, h, w)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, c, h, w)
    idx_n = torch.arange(n).view(n, 1, 1, 1).expand(n, c, h, w)
    idx_c = torch.arange(c).view(1, c, 1, 1).expand(n, c, h, w)
    return padded[idx_n, idx_c, rows, cols]


@torch.no_grad()
def accuracy(judge: Judge, data: ClassData, batch_size: int = 512) -> tuple[float, list[float]]:
    """Overall and per-class accuracy on ``data``."""
    pred = judge.predict(data.images, batch_size=batch_size)
    labels = data.labels.cpu()
    per_class = [
        float((pred[labels == c] == c).float().mean()) if (labels == c).any() else float("nan")
        for c in range(data.num_classes)
    ]
    return float((pred == labels).float().mean()), per_class


def train_judge(
    train: ClassData,
    *,
    image_size: int = 32,
    channels: int = 3,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 0.1,
    weight_decay: float = 5e-4,
    crop_pad: int = 4,
    flip: bool = True,
    label_smoothing: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    log=print,
) -> tuple[Judge, dict]:
    """SGD (Nesterov) with a one-cycle learning rate; returns (judge in eval mode, info)."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mean, std = channel_stats(train.images)
    if len(mean) != channels:
        mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
    cfg = judge_config(train.class_names, image_size, channels, mean, std)
    judge = Judge(cfg).to(device)
    judge.net.to(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
    # resize/convert once, not every epoch
    x = judge.prepare(train.images.to(device)).cpu()
    x = x * judge.std.cpu() + judge.mean.cpu()  # back to [0, 1], normalized again per batch
    y = train.labels
    steps_per_epoch = math.ceil(len(x) / batch_size)
    params = [p for p in judge.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25
    )
    judge.train()
    t0 = time.perf_counter()
    bar = tqdm(total=epochs * steps_per_epoch, desc="judge", disable=not progress)
    loss_val = float("nan")
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb = random_crop(x[idx], crop_pad, gen)
            if flip:
                mirror = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(mirror.view(-1, 1, 1, 1), xb.flip(-1), xb)
            xb = ((xb.to(device) - judge.mean) / judge.std).contiguous(
                memory_format=torch.channels_last
            )
            logits = judge.net(xb)
            loss = F.cross_entropy(logits, y[idx].to(device), label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_val = loss.item()
            bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_val:.3f}")
    bar.close()
    judge.eval()
    info = {
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "batch_size": batch_size,
        "learning_rate": lr,
        "weight_decay": weight_decay,
        "crop_pad": crop_pad,
        "flip": flip,
        "label_smoothing": label_smoothing,
        "seed": seed,
        "final_loss": loss_val,
        "train_seconds": round(time.perf_counter() - t0, 2),
        "n_train": len(x),
    }
    return judge, info
