"""Class-conditional sampling with classifier-free guidance and DDIM.

Each sample's initial noise comes from its own generator (``seed + index``), so a given seed
gives the same images whatever the batch size or device split — comparisons between an
original and an erased model see the same starting noise.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .errors import EraseError


def initial_noise(shape: tuple[int, ...], n: int, seed: int, offset: int = 0) -> torch.Tensor:
    """``n`` noise tensors of ``shape``, sample ``i`` drawn from ``Generator(seed + offset + i)``."""
    out = torch.empty((n, *shape), dtype=torch.float32)
    for i in range(n):
        g = torch.Generator().manual_seed(seed + offset + i)
        out[i] = torch.randn(shape, generator=g, dtype=torch.float32)
    return out


@torch.no_grad()
def sample_class_conditional(
    unet,
    scheduler,
    labels,
    guidance_scale: float = 1.5,
    null_class: int = 10,
    num_inference_steps: int = 50,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
    eta: float = 0.0,
) -> torch.Tensor:
    """Generate one image per label; returns float32 CPU images in [-1, 1].

    Classifier-free guidance: ε = ε(x, ∅) + w (ε(x, y) − ε(x, ∅)), with the conditional and the
    null half in one batched forward pass (``guidance_scale == 1`` skips the null half).
    Deterministic per seed for ``eta == 0`` (the default). The default guidance is the digits
    world's (``world.json``); guidance 2 over-saturates that model (see its guidance_sweep).
    """
    from diffusers import DDIMScheduler

    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    if labels.numel() == 0:
        raise EraseError("sample_class_conditional needs at least one label")
    if batch_size < 1:
        raise EraseError(f"batch_size must be >= 1, got {batch_size}")
    num_embeds = getattr(unet.config, "num_class_embeds", None)
    if num_embeds is not None and (labels.min() < 0 or labels.max() >= num_embeds):
        raise EraseError(
            f"labels must lie in [0, {num_embeds - 1}] for this UNet, got "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    device = next(unet.parameters()).device
    model_dtype = next(unet.parameters()).dtype
    ddim = DDIMScheduler.from_config(scheduler.config)
    ddim.set_timesteps(num_inference_steps, device=device)
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    use_cfg = guidance_scale != 1.0

    was_training = unet.training
    unet.eval()
    outputs = []
    n_total = labels.numel()
    n_batches = (n_total + batch_size - 1) // batch_size
    bar = tqdm(total=n_batches * num_inference_steps, desc="sampling", disable=not progress)
    try:
        for start in range(0, n_total, batch_size):
            y = labels[start : start + batch_size].to(device)
            n = y.numel()
            x = initial_noise(shape, n, seed, offset=start).to(device)
            x = x * ddim.init_noise_sigma
            cls = torch.cat([y, torch.full_like(y, null_class)]) if use_cfg else y
            gen = torch.Generator().manual_seed(seed + start) if eta > 0 else None
            for t in ddim.timesteps:
                inp = torch.cat([x, x]) if use_cfg else x
                inp = ddim.scale_model_input(inp, t)
                tt = t.expand(inp.shape[0]) if t.dim() == 0 else t
                eps = unet(inp.to(model_dtype), tt, class_labels=cls).sample.float()
                if use_cfg:
                    eps_c, eps_u = eps.chunk(2)
                    eps = eps_u + guidance_scale * (eps_c - eps_u)
                step_kwargs = {"eta": eta}
                if gen is not None:
                    step_kwargs["generator"] = gen
                x = ddim.step(eps, t, x, **step_kwargs).prev_sample.float()
                bar.update(1)
            outputs.append(x.clamp(-1.0, 1.0).cpu())
    finally:
        bar.close()
        unet.train(was_training)
    return torch.cat(outputs)
