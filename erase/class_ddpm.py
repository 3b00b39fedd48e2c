"""Pretraining a class-conditional DDPM (``UNet2DModel`` + null class) on any class data.

The last class embedding is the null class: labels are dropped to it at ``cond_drop`` so one
network gives both terms of classifier-free guidance. All randomness of a step (batch, flips,
label drop, noise, timesteps, dropout) is drawn from a generator seeded by (seed, step, rank),
so a run resumed from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import EraseError

MODEL_SIZES = ("tiny", "small", "cifar")


def make_class_unet(size: str, num_classes: int, channels: int, resolution: int):
    """``cifar``: the DDPM CIFAR-10 network (Ho et al. 2020; ``google/ddpm-cifar10-32``'s config,
    35.7 M parameters) plus class embeddings; ``small``: ~9 M for quick GPU runs; ``tiny``: for
    tests and smoke runs on a CPU."""
    from diffusers import UNet2DModel

    common = dict(
        sample_size=resolution,
        in_channels=channels,
        out_channels=channels,
        num_class_embeds=num_classes + 1,
    )
    if size == "tiny":
        return UNet2DModel(
            **common,
            block_out_channels=(16, 32),
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            layers_per_block=1,
            norm_num_groups=8,
        )
    if size == "small":
        return UNet2DModel(
            **common,
            block_out_channels=(64, 128, 128),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            layers_per_block=2,
            attention_head_dim=None,
            dropout=0.1,
        )
    if size == "cifar":
        return UNet2DModel(
            **common,
            block_out_channels=(128, 256, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            layers_per_block=2,
            attention_head_dim=None,
            downsample_padding=0,
            flip_sin_to_cos=False,
            freq_shift=1,
            dropout=0.1,
        )
    raise EraseError(f"--model_size must be one of {', '.join(MODEL_SIZES)}, got {size!r}")


def make_class_scheduler(beta_schedule: str = "linear"):
    """DDPM's 1000-step schedule (linear β 1e-4…0.02 as in the paper, or cosine), ε-prediction.

    ``timestep_spacing="trailing"`` so DDIM with few steps starts from pure noise."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule=beta_schedule,
        beta_start=1e-4,
        beta_end=0.02,
        prediction_type="epsilon",
        clip_sample=True,
        clip_sample_range=1.0,
        timestep_spacing="trailing",
    )


def warmup_constant(warmup_steps: int):
    """LR factor: linear warm-up (DDPM used 5,000 steps), then constant."""
    return lambda step: min(1.0, (step + 1) / max(1, warmup_steps))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1024 + rank)


def training_batch(images, labels, batch_size, null_class, cond_drop, flip, gen):
    """A random batch (with replacement), optional horizontal flips, labels dropped to null."""
    idx = torch.randint(0, len(images), (batch_size,), generator=gen)
    x, y = images[idx], labels[idx].clone()
    if flip:
        mirror = torch.rand(batch_size, generator=gen) < 0.5
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
    y[torch.rand(batch_size, generator=gen) < cond_drop] = null_class
    return x, y


def denoising_loss(unet, scheduler, x, y, gen, device) -> torch.Tensor:
    """ε-MSE at uniform timesteps; noise and timesteps drawn on the CPU from ``gen``."""
    noise = torch.randn(x.shape, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x),), generator=gen)
    x, noise, t = x.to(device), noise.to(device), t.to(device)
    noisy = scheduler.add_noise(x, noise, t)
    pred = unet(noisy, t, class_labels=y.to(device)).sample
    return F.mse_loss(pred.float(), noise.float())


def without_classes(images, labels, classes):
    """``(images, labels)`` minus the given classes: the exact-unlearning reference's data."""
    if not classes:
        return images, labels
    keep = ~torch.isin(labels, torch.tensor([int(c) for c in classes], device=labels.device))
    return images[keep], labels[keep]


def train_denoiser(
    unet,
    scheduler,
    opt,
    lr_sched,
    next_batch,
    *,
    step: int,
    max_steps: int | None,
    device,
    ema: EMA | None = None,
    ema_model=None,
    max_grad_norm: float = 1.0,
    backward=None,
    clip=None,
    stop=None,
    after_step=None,
) -> int:
    """The one DDPM training loop (digits pretraining and ``train_class_ddpm``); returns the step.

    ``next_batch(step)`` gives ``(x, y, gen)``; the noise and timesteps are then drawn from
    ``gen``, so the caller fixes the order the RNG is consumed in (resume and committed assets
    stay bit-exact). ``backward``/``clip`` default to plain torch (accelerate's in the CLI);
    ``stop()`` ends early (a time limit); ``after_step(step, loss)`` logs and checkpoints.
    """
    backward = backward or (lambda loss: loss.backward())
    clip = clip or torch.nn.utils.clip_grad_norm_
    while max_steps is None or step < max_steps:
        if stop is not None and stop():
            break
        x, y, gen = next_batch(step)
        loss = denoising_loss(unet, scheduler, x, y, gen, device)
        backward(loss)
        if max_grad_norm:
            clip(unet.parameters(), max_grad_norm)
        opt.step()
        lr_sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if ema is not None:
            ema.update(ema_model if ema_model is not None else unet, step)
        if after_step is not None:
            after_step(step, loss.item())
    return step


def num_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def ema_decay_at(decay: float, n: int) -> float:
    return min(decay, (1 + n) / (10 + n))


class EMA:
    """Exponential moving average of the weights (warm-up decay), kept in float32."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = ema_decay_at(self.decay, step)
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: torch.nn.Module) -> None:
        state = model.state_dict()
        model.load_state_dict({k: v.to(state[k].dtype) for k, v in self.shadow.items()})


def check_resolution(resolution: int, size: str) -> None:
    levels = {"tiny": 2, "small": 3, "cifar": 4}[size]
    if resolution % (2 ** (levels - 1)) or resolution < 2 ** (levels - 1):
        raise EraseError(
            f"--resolution {resolution} does not halve {levels - 1} times for --model_size {size}; "
            f"use a multiple of {2 ** (levels - 1)}"
        )
