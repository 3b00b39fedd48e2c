"""The embedded class-conditional DDPM on digits: a real diffusers ``UNet2DModel`` at 8×8.

Class ``NULL_CLASS`` (10) is the empty label for classifier-free guidance. The committed asset
``erase/assets/digits_ddpm/`` (``unet/``, ``scheduler/``, ``world.json``) is produced by
``scripts/train_toy.py`` with a fixed seed; the erasure methods fine-tune it.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from ..class_ddpm import EMA, train_denoiser, training_batch, without_classes
from ..errors import EraseError
from ..io import atomic_dir, atomic_write_json
from .digits import (
    ASSETS_DIR,
    IMAGE_SIZE,
    NUM_CLASSES,
    digits_split,
    load_digits_images,
    writable_asset_location,
)

NULL_CLASS = 10
ASSET_NAME = "digits_ddpm"
DEFAULT_GUIDANCE_SCALE = 1.5  # 2.0 over-saturates this model; see world.json guidance_sweep
DEFAULT_INFERENCE_STEPS = 50
DEFAULT_TRAIN_STEPS = 1000  # what the committed asset was trained with (see world.json)


def make_digits_unet(
    block_out_channels: tuple[int, ...] = (64, 128),
    layers_per_block: int = 2,
    attention_head_dim: int = 32,
):
    """~4 M-parameter class-conditional UNet (second block and mid block with attention)."""
    from diffusers import UNet2DModel

    n = len(block_out_channels)
    down = ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D"]
    up = ["AttnUpBlock2D"] + ["UpBlock2D"] * (n - 1)
    return UNet2DModel(
        sample_size=IMAGE_SIZE,
        in_channels=1,
        out_channels=1,
        block_out_channels=tuple(block_out_channels),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        layers_per_block=layers_per_block,
        attention_head_dim=attention_head_dim,
        norm_num_groups=min(32, min(block_out_channels)),
        num_class_embeds=NUM_CLASSES + 1,
    )


def make_digits_scheduler():
    """Cosine-schedule DDPM scheduler, ε-prediction, samples clipped to [-1, 1].

    ``timestep_spacing="trailing"`` so that DDIM with few steps starts at the last timestep.
    """
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=True,
        clip_sample_range=1.0,
        timestep_spacing="trailing",
    )


def train_digits_ddpm(
    output_dir: str | Path | None = None,
    max_seconds: float | None = None,
    max_steps: int | None = DEFAULT_TRAIN_STEPS,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    cond_drop: float = 0.1,
    ema_decay: float = 0.995,
    split: str = "train",
    unet=None,
    classifier=None,
    eval_samples_per_class: int = 50,
    device: str | torch.device = "cpu",
    progress: bool = True,
    log_every: int = 50,
    loss_curve_every: int = 50,
    exclude_classes: tuple[int, ...] = (),
):
    """Train the class-conditional DDPM; returns ``(unet, scheduler, info)``.

    Stops at ``max_steps`` or ``max_seconds``, whichever comes first (a fixed step count is
    reproducible; a time limit is not). Labels are replaced by the null class with probability
    ``cond_drop`` so that one network gives both terms of classifier-free guidance. If
    ``classifier`` is given, the samples it recognises are measured and written to
    ``world.json``. With ``output_dir`` the result is saved there atomically.
    ``exclude_classes`` trains the same recipe on the data without those classes: the
    exact-unlearning reference (:mod:`erase.reference`).
    """
    if max_steps is None and max_seconds is None:
        raise EraseError("give max_steps or max_seconds to train_digits_ddpm")
    if split not in ("train", "all"):
        raise EraseError(f"split must be 'train' or 'all', got {split!r}")
    torch.manual_seed(seed)  # the UNet's initial weights
    gen = torch.Generator().manual_seed(seed)  # batches, label drops, noise, timesteps
    images, labels = _digits_training_data(split, exclude_classes, device)
    unet = (unet if unet is not None else make_digits_unet()).to(device)
    scheduler = make_digits_scheduler()
    ema = EMA(unet, ema_decay)

    def next_batch(step):
        x, y = training_batch(images, labels, batch_size, NULL_CLASS, cond_drop, False, gen)
        return x, y, gen

    losses, seconds = _run_digits_loop(
        unet, scheduler, ema, next_batch, lr, max_steps, max_seconds, device, progress, log_every
    )
    ema.copy_to(unet)
    unet.eval()
    recipe = dict(seed=seed, batch_size=batch_size, lr=lr, cond_drop=cond_drop, ema_decay=ema_decay)
    info = _digits_info(unet, split, recipe, losses, seconds, loss_curve_every, exclude_classes)
    if classifier is not None:
        info["evaluation"] = evaluate_digits_ddpm(
            unet, scheduler, classifier, samples_per_class=eval_samples_per_class
        )
    if output_dir is not None:
        save_digits_ddpm(unet, scheduler, info, output_dir)
    return unet, scheduler, info


def _digits_training_data(split: str, exclude_classes, device):
    """The fixed train split (or all digits), minus ``exclude_classes``, on ``device``."""
    if split == "train":
        s = digits_split(seed=0)
        images, labels = s.train_images, s.train_labels
    else:
        images, labels = load_digits_images()
    images, labels = without_classes(images, labels, exclude_classes)
    return images.to(device), labels.to(device)


def _digits_lr_factor(total: int | None, warmup: int = 50):
    """Linear warm-up, then cosine to 0.1x over ``total`` steps (constant without a total)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if total is None:
            return 1.0
        frac = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    return factor


def _run_digits_loop(
    unet, scheduler, ema, next_batch, lr, max_steps, max_seconds, device, progress, log_every
):
    """AdamW under the digits schedule through :func:`train_denoiser`; ``(losses, seconds)``."""
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _digits_lr_factor(max_steps))
    unet.train()
    losses: list[float] = []
    start = time.monotonic()
    bar = tqdm(total=max_steps, desc="digits ddpm", disable=not progress)

    def after_step(step: int, loss: float) -> None:
        losses.append(loss)
        bar.update(1)
        if step % log_every == 0:
            bar.set_postfix(loss=f"{sum(losses[-log_every:]) / log_every:.4f}")

    def out_of_time() -> bool:
        return max_seconds is not None and time.monotonic() - start >= max_seconds

    train_denoiser(
        unet, scheduler, opt, sched, next_batch, step=0, max_steps=max_steps, device=device,
        ema=ema, max_grad_norm=1.0, stop=out_of_time, after_step=after_step,
    )  # fmt: skip
    bar.close()
    return losses, time.monotonic() - start


def _digits_info(unet, split, recipe, losses, seconds, loss_curve_every, exclude_classes) -> dict:
    """``world.json``: the world's constants, the recipe, and the loss curve."""
    tail = losses[-min(len(losses), 100) :]
    info = {
        "image_size": IMAGE_SIZE,
        "num_classes": NUM_CLASSES,
        "null_class": NULL_CLASS,
        "guidance_scale": DEFAULT_GUIDANCE_SCALE,
        "num_inference_steps": DEFAULT_INFERENCE_STEPS,
        "pixel_range": [-1.0, 1.0],
        "data": f"sklearn.datasets.load_digits, values/16*2-1, split={split!r} (digits_split seed 0)",
        "num_parameters": sum(p.numel() for p in unet.parameters()),
        "training": {
            "seed": recipe["seed"],
            "steps": len(losses),
            "seconds": round(seconds, 1),
            "batch_size": recipe["batch_size"],
            "lr": recipe["lr"],
            "lr_schedule": "linear warmup 50 steps, cosine to 0.1x",
            "optimizer": "AdamW, grad-norm clip 1.0",
            "cond_drop": recipe["cond_drop"],
            "ema_decay": recipe["ema_decay"],
            "final_loss": sum(tail) / len(tail) if tail else None,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        f"losses_every_{loss_curve_every}": [
            round(sum(losses[i : i + loss_curve_every]) / len(losses[i : i + loss_curve_every]), 5)
            for i in range(0, len(losses), loss_curve_every)
        ],
    }
    if exclude_classes:
        info["excluded_classes"] = sorted(int(c) for c in exclude_classes)
        info["data"] += f", without classes {info['excluded_classes']}"
    return info


@torch.no_grad()
def evaluate_digits_ddpm(
    unet,
    scheduler,
    classifier,
    samples_per_class: int = 50,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    num_inference_steps: int = DEFAULT_INFERENCE_STEPS,
    seed: int = 0,
) -> dict:
    """Share of samples the independent classifier recognises as the asked digit."""
    from ..sampling import sample_class_conditional

    labels = torch.arange(NUM_CLASSES).repeat_interleave(samples_per_class)
    images = sample_class_conditional(
        unet,
        scheduler,
        labels,
        guidance_scale=guidance_scale,
        null_class=NULL_CLASS,
        num_inference_steps=num_inference_steps,
        seed=seed,
    )
    pred = classifier.predict(images)
    correct = (pred == labels).float()
    per_class = {str(c): float(correct[labels == c].mean()) for c in range(NUM_CLASSES)}
    return {
        "sample_accuracy": float(correct.mean()),
        "per_class_accuracy": per_class,
        "samples_per_class": samples_per_class,
        "guidance_scale": guidance_scale,
        "num_inference_steps": num_inference_steps,
        "sampler": "DDIM (eta 0), classifier-free guidance",
        "sample_seed": seed,
        "classifier_test_accuracy": getattr(classifier, "test_accuracy", None),
    }


def save_digits_ddpm(unet, scheduler, info: dict, output_dir: str | Path, grid=None) -> Path:
    """Write ``unet/`` (safetensors), ``scheduler/``, ``world.json`` (and an optional sample
    grid ``samples.png``) atomically: a crash never leaves a half-written folder."""
    output_dir = Path(output_dir)
    with atomic_dir(output_dir) as tmp:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        atomic_write_json(tmp / "world.json", info)
        if grid is not None:
            grid.save(tmp / "samples.png")
    return output_dir


def digits_grid(images: torch.Tensor, rows: int, scale: int = 4):
    """A PIL grid of [-1,1] digit images (nearest-neighbour upscaled) for a quick look."""
    from diffusers.utils import make_image_grid
    from PIL import Image

    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    pil = [
        Image.fromarray(a, mode="L").resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST)
        for a in arr
    ]
    return make_image_grid(pil, rows=rows, cols=len(pil) // rows)


def _is_ddpm_dir(path: Path) -> bool:
    return (path / "unet" / "config.json").exists() and (path / "world.json").exists()


def digits_ddpm_path() -> Path:
    """The committed DDPM asset folder; trained (default settings) and cached if missing."""
    committed = ASSETS_DIR / ASSET_NAME
    if _is_ddpm_dir(committed):
        return committed
    target = writable_asset_location(ASSET_NAME)
    if _is_ddpm_dir(target):
        return target
    from .classifier import load_digits_classifier

    print(
        f"digits DDPM asset missing; training it ({DEFAULT_TRAIN_STEPS} steps, seed 0; "
        f"tens of minutes on a CPU) -> {target}",
        file=sys.stderr,
    )
    train_digits_ddpm(
        output_dir=target,
        max_steps=DEFAULT_TRAIN_STEPS,
        seed=0,
        classifier=load_digits_classifier(),
    )
    return target


def load_digits_ddpm(path: str | Path | None = None, device: str | torch.device = "cpu"):
    """``(unet, scheduler, world)`` from a folder written by :func:`save_digits_ddpm`."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(path) if path is not None else digits_ddpm_path()
    if not _is_ddpm_dir(path):
        raise EraseError(
            f"{str(path)!r} is not a digits DDPM folder (needs unet/, scheduler/, world.json); "
            "run scripts/train_toy.py to create one"
        )
    unet = UNet2DModel.from_pretrained(path / "unet", use_safetensors=True).to(device).eval()
    scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
    world = json.loads((path / "world.json").read_text())
    return unet, scheduler, world
