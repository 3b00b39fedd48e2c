"""Preparing a concept erasure once: prompt embeddings and x0 latents (cached on disk)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .errors import EraseError
from .families import TextCond, cat_conds, family_of
from .tasks.concept_erasure import LatentPool


def resolution_of(pipe, resolution: int | None = None) -> int:
    """``resolution`` if given, else the UNet's native size (512 / 768 / 1024)."""
    return int(resolution) if resolution else family_of(pipe).default_resolution(pipe)


@torch.no_grad()
def embed_prompts(
    pipe, prompts: list[str], device, batch_size: int = 64, resolution: int | None = None
) -> TextCond:
    """The UNet conditions for ``prompts`` (cross-attention states, and for SDXL the pooled
    embedding and size conditioning at ``resolution``), on the CPU in float32."""
    family, res = family_of(pipe), resolution_of(pipe, resolution)
    out = [
        family.encode(pipe, prompts[i : i + batch_size], device, res)
        for i in range(0, len(prompts), batch_size)
    ]
    return cat_conds(out)


@torch.no_grad()
def null_condition(pipe, device, resolution: int | None = None) -> TextCond:
    """The unconditional condition as the pipeline's guidance uses it (SDXL: zeros), on the
    CPU in float32 as every family's ``encode`` returns it."""
    return family_of(pipe).null(pipe, device, resolution_of(pipe, resolution))


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@torch.no_grad()
def generate_latents(
    pipe,
    prompts: list[str],
    per_prompt: int,
    seed: int,
    steps: int,
    guidance: float,
    device,
    batch_size: int,
    cache_dir: Path | None,
    progress: bool = True,
    resolution: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents the original pipeline draws for each prompt (``per_prompt`` seeds each).

    The result is a pure function of the model, prompts and settings, so it is cached in
    ``cache_dir`` (safetensors) and a resumed run or a second method reuses it.
    """
    res = resolution_of(pipe, resolution)
    key = _key(
        str(pipe.config._name_or_path),
        res,
        prompts,
        per_prompt,
        seed,
        steps,
        guidance,
        sum(float(p.float().sum()) for p in list(pipe.unet.parameters())[:4]),
    )
    cache = cache_dir / f"latents-{key}.safetensors" if cache_dir else None
    if cache is not None and cache.exists():
        d = load_file(str(cache))
        return d["latents"], d["prompt_index"]
    jobs = [(i, p, seed + i * 1000 + k) for i, p in enumerate(prompts) for k in range(per_prompt)]
    lat, idx = [], []
    pipe.set_progress_bar_config(disable=True)
    for s in tqdm(
        range(0, len(jobs), batch_size),
        desc="generating forget/retain latents",
        disable=not progress,
    ):
        chunk = jobs[s : s + batch_size]
        gens = [torch.Generator().manual_seed(j[2]) for j in chunk]
        out = pipe(
            prompt=[j[1] for j in chunk],
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            height=res,
            width=res,
            output_type="latent",
        ).images
        lat.append(out.float().cpu())
        idx += [j[0] for j in chunk]
    latents, prompt_index = torch.cat(lat), torch.tensor(idx)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # a name of this process's own: ranks of a multi-process run may write it at once
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        save_file({"latents": latents.contiguous(), "prompt_index": prompt_index}, str(tmp))
        tmp.replace(cache)
    return latents, prompt_index


@torch.no_grad()
def encode_image_folder(pipe, folder: str, device, size: int | None = None) -> torch.Tensor:
    """VAE latents (scaled) of the user's images of the concept, at ``size`` (default: the
    UNet's native resolution)."""
    import numpy as np

    from .images import list_images, load_image

    size = resolution_of(pipe, size)
    xs = []
    for f in list_images(folder):
        im = load_image(f).resize((size, size))
        xs.append(torch.from_numpy(np.asarray(im)).permute(2, 0, 1).float() / 127.5 - 1)
    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    dtype = torch.float32 if upcast else vae.dtype  # SDXL's VAE overflows in fp16
    vae_dtype = vae.dtype
    if upcast:
        vae.to(torch.float32)
    x = torch.stack(xs).to(device, dtype)
    lat = vae.encode(x).latent_dist.sample(
        torch.Generator(device="cpu").manual_seed(0) if x.device.type == "cpu" else None
    )
    if upcast:
        vae.to(vae_dtype)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return ((lat - shift) * vae.config.scaling_factor).float().cpu()


def build_pools(
    pipe,
    concept,
    retain_prompts,
    args,
    device,
    cache_dir,
    progress: bool = True,
    forget_from_anchor: bool = False,
) -> tuple:
    """(forget pool, retain pool or None, null condition); ``progress`` on the main process.
    ``args.resolution`` (None: the UNet's native size) sets the generated latents' size and
    SDXL's size conditioning. ``forget_from_anchor``: the forget images are the anchor's
    (Concept Ablation), still paired with the concept's prompts."""
    res = resolution_of(pipe, getattr(args, "resolution", None))
    forget_emb = embed_prompts(pipe, concept.forget, device, resolution=res)
    anchors = [concept.anchor_for(i) for i in range(len(concept.forget))]
    anchor_emb = embed_prompts(pipe, anchors, device, resolution=res) if any(anchors) else None
    null_emb = null_condition(pipe, device, res)
    if anchor_emb is None:
        anchor_emb = null_emb.expand(len(concept.forget), *null_emb.shape[1:]).clone()
    gen_kw = dict(
        seed=args.seed,
        steps=args.gen_steps,
        guidance=args.gen_guidance_scale,
        device=device,
        batch_size=args.gen_batch_size,
        cache_dir=cache_dir,
        progress=progress,
        resolution=res,
    )
    if args.forget_images:
        latents = encode_image_folder(pipe, args.forget_images, device, res)
        pidx = torch.arange(len(latents)) % len(concept.forget)
    else:
        sources = anchors if forget_from_anchor else concept.forget
        latents, pidx = generate_latents(pipe, sources, args.images_per_prompt, **gen_kw)
    forget = LatentPool(latents, pidx, forget_emb, anchor_emb)
    retain = None
    if retain_prompts:
        r_lat, r_idx = generate_latents(
            pipe, retain_prompts, args.retain_images_per_prompt, **{**gen_kw, "seed": args.seed + 7}
        )
        retain = LatentPool(
            r_lat, r_idx, embed_prompts(pipe, retain_prompts, device, resolution=res)
        )
    if len(forget.latents) == 0:
        raise EraseError("no forget latents: give --forget_images or --images_per_prompt >= 1")
    return forget, retain, null_emb
