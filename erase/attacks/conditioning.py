"""How prompts become conditions and how the UNet is called, for the prompt attacks.

Everything family-specific the attacks need lives here (SD-1.x-shaped pipelines: one CLIP text
encoder whose last hidden state is the UNet's ``encoder_hidden_states``), so that switching to
a per-family adapter touches this module only.
"""

from __future__ import annotations

import math

import torch

from ..errors import EraseError
from ..losses import denoising_target
from ..tasks.concept_erasure import predict_text

SUPPORTED_FAMILIES = ("sd",)


def check_family(pipe) -> None:
    """One clear error for a pipeline family the token-level attacks do not handle yet."""
    from ..families import family_of

    family = family_of(pipe)
    if family.name not in SUPPORTED_FAMILIES:
        raise EraseError(
            f"the attacks support SD 1.x/2.x pipelines (one text encoder); {family.pipeline_class} "
            "is not supported yet (its second text encoder and pooled embedding)"
        )


def token_ids(pipe, prompts: list[str], n_slots: int = 0, slot_id: int | None = None):
    """``[P, L]`` padded token ids with ``n_slots`` placeholder tokens right after BOS.

    A prompt that does not fit next to the slots is an error (truncation would silently cut
    the concept off the end of the prompt).
    """
    tok = pipe.tokenizer
    length = tok.model_max_length
    slot = tok.eos_token_id if slot_id is None else slot_id
    out = []
    for prompt, row in zip(prompts, tok(list(prompts)).input_ids):  # [BOS, ..., EOS]
        full = [row[0]] + [slot] * n_slots + list(row[1:])
        if len(full) > length:
            raise EraseError(
                f"prompt {prompt!r} with {n_slots} adversarial tokens needs {len(full)} tokens; "
                f"the text encoder takes {length}: use fewer --tokens or a shorter prompt"
            )
        out.append(full + [tok.pad_token_id] * (length - len(full)))
    return torch.tensor(out)


def token_table(pipe) -> torch.Tensor:
    """The text encoder's input embedding matrix ``[V, D]`` (no gradient)."""
    return pipe.text_encoder.get_input_embeddings().weight.detach()


def encode_tokens(pipe, ids: torch.Tensor, inject: torch.Tensor | None = None, start: int = 1):
    """Text-encoder states for ``ids``; ``inject`` ``[B, k, D]`` replaces the token embeddings
    at positions ``start .. start+k`` (differentiably: the attacks' gradients flow through)."""
    te = pipe.text_encoder
    handle = None
    if inject is not None:
        k = inject.shape[1]

        def hook(module, args, out):
            inj = inject.to(out.dtype).expand(out.shape[0], -1, -1)
            return torch.cat([out[:, :start], inj, out[:, start + k :]], dim=1)

        handle = te.get_input_embeddings().register_forward_hook(hook)
    try:
        return te(ids.to(te.device))[0]
    finally:
        if handle is not None:
            handle.remove()


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    return encode_tokens(pipe, token_ids(pipe, prompts))


def training_scheduler(pipe):
    """DDPM noising with the pipeline's schedule and prediction type, whatever its sampler
    (an Euler or PNDM sampler's ``add_noise`` is not the training noise)."""
    from diffusers import DDPMScheduler

    cached = getattr(pipe, "_erase_training_scheduler", None)
    if cached is None:
        cached = DDPMScheduler.from_config(pipe.scheduler.config)
        pipe._erase_training_scheduler = cached
    return cached


def denoising_loss(pipe, x0, cond, t, noise, unet=None):
    """The attacked model's own denoising MSE on target latents ``x0`` at timesteps ``t``, in
    its prediction space (ε, v or x₀): the loss every prompt attack shares."""
    unet = pipe.unet if unet is None else unet
    sched = training_scheduler(pipe)
    x_t = sched.add_noise(x0, noise, t)
    out = predict_text(unet, x_t, t, cond.expand(x0.shape[0], -1, -1))
    target = denoising_target(sched, x0, noise, t)
    return torch.nn.functional.mse_loss(out.float(), target.float())


@torch.no_grad()
def generate(pipe, cond, seeds, guidance_scale, steps, output_type="pil"):
    """Sample one image per condition row and seed, as ``pipe(prompt=...)`` would for the
    prompt the condition encodes (same negative condition, same per-image generators)."""
    null = encode_prompts(pipe, [""]).to(cond.dtype)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return pipe(
        prompt_embeds=cond,
        negative_prompt_embeds=null.expand(cond.shape[0], -1, -1),
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=gens,
        output_type=output_type,
    ).images


# images per pipeline call where an attack samples many (prompt, seed) pairs: the tiny world's
# 16 images take 2.2 s in one call against 7.8 s one by one on a CPU thread, the same images up
# to float rounding (every image has its own generator; their pixels were identical); 8 keeps
# an SDXL batch (16 with guidance) small
GENERATE_BATCH = 8


def generate_many(pipe, prompts, seeds, guidance_scale, steps, output_type="pil", batch=None):
    """``generate`` for image ``i`` = (``prompts[i]``, ``seeds[i]``), ``batch`` images a call:
    the images one call each would give, in a fraction of the time. A list of images, or for
    ``output_type="latent"`` one tensor."""
    batch = batch or GENERATE_BATCH
    parts = []
    for i in range(0, len(prompts), batch):
        cond = encode_prompts(pipe, list(prompts[i : i + batch]))
        images = generate(pipe, cond, seeds[i : i + batch], guidance_scale, steps, output_type)
        parts.append(images if output_type == "latent" else list(images))
    if output_type == "latent":
        return torch.cat(parts)
    return [im for part in parts for im in part]


def same_vae(a, b) -> bool:
    """Whether two pipelines share one latent space: the same VAE object, or the same scaling
    of its latents and weights equal up to float error (a model retrained with the original's
    seed on another machine has the original's VAE to ~1e-6; another seed's differs by ~1)."""
    if a.vae is b.vae:
        return True
    for k in ("scaling_factor", "shift_factor"):  # computed from the data: float error too
        x, y = getattr(a.vae.config, k, None) or 0.0, getattr(b.vae.config, k, None) or 0.0
        if not math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-8):
            return False
    sa, sb = a.vae.state_dict(), b.vae.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape
        and torch.allclose(sa[k].float(), sb[k].to(sa[k].device).float(), rtol=1e-4, atol=1e-5)
        for k in sa
    )


@torch.no_grad()
def to_latent_space(latents: torch.Tensor, source, target) -> torch.Tensor:
    """``source``'s latents (scaled, as its UNet sees them) as ``target``'s UNet would see the
    same images: decoded by ``source``'s VAE and encoded by ``target``'s (the distribution's
    mean). The attacker holds images, not another model's latents: a model retrained with
    another seed has its own VAE, and the original's latents mean nothing to it. Unchanged
    where both pipelines share a VAE (every erased model and its original, and a reference of
    the original's seed): the codec's round trip is lossy, and those models see the latents
    exactly as the attacks always gave them."""
    if same_vae(source, target):
        return latents

    def frame(vae):
        return vae.config.scaling_factor, getattr(vae.config, "shift_factor", None) or 0.0

    scale, shift = frame(source.vae)
    src = next(source.vae.parameters())
    images = source.vae.decode((latents / scale + shift).to(src.device, src.dtype)).sample
    scale, shift = frame(target.vae)
    dst = next(target.vae.parameters())
    encoded = target.vae.encode(images.clamp(-1, 1).to(dst.device, dst.dtype)).latent_dist.mode()
    return ((encoded.float() - shift) * scale).to(latents.device, latents.dtype)


def decode_tokens(pipe, ids) -> str:
    """Token ids back to text, as a user would type them."""
    return pipe.tokenizer.decode(list(ids), skip_special_tokens=True).strip()
