"""Models to sample from for evaluation and audit grids, whatever form the erased model takes.

A generator is one of: a ``DiffusionPipeline`` folder; a UNet-only folder (``OUT/unet/`` or
a folder holding ``config.json`` + weights) over a base pipeline; LoRA weights over a base
(diffusers ``pytorch_lora_weights.safetensors`` or a peft adapter folder); a class-conditional
DDPM run dir (``unet/`` of a ``UNet2DModel``, ``scheduler/`` from the run or the base).
``None`` means the embedded world (tiny SD for prompts, the digits DDPM for classes).
Pipelines themselves are resolved and loaded by :mod:`erase.loading`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EraseError

LORA_FILES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")


@dataclass
class Generator:
    """A loaded model with one way to sample: ``kind`` is "pipeline" or "ddpm"."""

    kind: str
    name: str
    pipe: object = None
    unet: object = None
    scheduler: object = None
    guidance_scale: float = 7.5
    num_inference_steps: int = 50
    null_class: int = 10
    info: dict = field(default_factory=dict)

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        batch_size: int = 16,
    ) -> list:
        """One PIL image per (prompt, seed); each image depends only on its own pair."""
        if self.kind != "pipeline":
            raise EraseError(f"{self.name} is a class-conditional model; give classes, not prompts")
        from .embedded.tiny_sd import generate

        return generate(
            self.pipe,
            list(prompts),
            [int(s) for s in seeds],
            guidance_scale=self.guidance_scale if guidance_scale is None else guidance_scale,
            num_inference_steps=self.num_inference_steps
            if num_inference_steps is None
            else num_inference_steps,
            batch_size=batch_size,
            output_type="pil",
        )

    def generate_classes(
        self,
        labels: Sequence[int],
        seed: int,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        batch_size: int = 256,
    ):
        """``[N,1,H,W]`` in [-1, 1]; image ``i`` starts from the noise of ``Generator(seed + i)``."""
        if self.kind != "ddpm":
            raise EraseError(f"{self.name} is a text-to-image model; give prompts, not classes")
        from .sampling import sample_class_conditional

        return sample_class_conditional(
            self.unet,
            self.scheduler,
            list(labels),
            guidance_scale=self.guidance_scale if guidance_scale is None else guidance_scale,
            null_class=self.null_class,
            num_inference_steps=self.num_inference_steps
            if num_inference_steps is None
            else num_inference_steps,
            seed=seed,
            batch_size=batch_size,
        )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _class_name(folder: Path) -> str | None:
    return _read_json(folder / "config.json").get("_class_name")


def is_ddpm_run(p: Path) -> bool:
    return _class_name(p / "unet") == "UNet2DModel" or _class_name(p) == "UNet2DModel"


def _unet_folder(p: Path) -> Path | None:
    if _class_name(p / "unet") == "UNet2DConditionModel":
        return p / "unet"
    if _class_name(p) == "UNet2DConditionModel":
        return p
    return None


def _lora_source(p: Path) -> Path | None:
    if p.is_file() and p.suffix in (".safetensors", ".bin"):
        return p
    for name in LORA_FILES:
        if (p / name).is_file():
            return p / name
    if (p / "adapter_config.json").is_file():
        return p
    for sub in ("lora", "unet_lora", "unet"):
        if (p / sub / "adapter_config.json").is_file():
            return p / sub
    return None


def load_generator(
    model: str | os.PathLike | None,
    base: str | os.PathLike | None = None,
    *,
    classes: bool = False,
    device: str = "cpu",
) -> Generator:
    """Load ``model`` (see the module docstring) as a :class:`Generator`."""
    if model is None:
        if classes:
            return _load_ddpm(None, device)
        return _pipeline_generator(None, device)
    p = Path(model)
    if p.exists() and is_ddpm_run(p):
        return _load_ddpm(p, device, base)
    if p.is_dir() and (p / "model_index.json").exists():
        return _pipeline_generator(str(p), device)
    unet_dir = _unet_folder(p) if p.is_dir() else None
    lora = None if unet_dir is not None else (_lora_source(p) if p.exists() else None)
    if unet_dir is not None or lora is not None:
        if base is None:  # the run's own record of what it was trained from
            cfg = _read_json((p if p.is_dir() else p.parent) / "erase_config.json")
            base = cfg.get("pretrained_model") or cfg.get("pretrained_model_name_or_path")
        gen = _pipeline_generator(str(base) if base is not None else None, device)
        if unet_dir is not None:
            from diffusers import UNet2DConditionModel

            try:
                unet = UNet2DConditionModel.from_pretrained(str(unet_dir)).to(device)
            except Exception as exc:
                raise EraseError(
                    f"cannot load the UNet in {str(unet_dir)!r} ({exc.__class__.__name__})"
                ) from None
            _check_unet_fits(gen.pipe.unet, unet, unet_dir, gen.name)
            gen.pipe.unet = unet.eval()
            gen.name = f"{p} (UNet over {gen.name})"
        else:
            _apply_lora(gen.pipe, lora)
            gen.name = f"{p} (LoRA over {gen.name})"
        return gen
    if not p.exists() and base is None and not str(model).startswith((".", "/")):
        return _pipeline_generator(str(model), device)  # a hub id: fails clearly offline
    if not p.exists():
        raise EraseError(f"model {str(model)!r} does not exist")
    raise EraseError(
        f"{str(model)!r} is neither a pipeline folder, a UNet folder, LoRA weights nor a DDPM "
        "run dir (expected model_index.json, unet/config.json, pytorch_lora_weights.safetensors "
        "or adapter_config.json)"
    )


def _check_unet_fits(base_unet, unet, folder, base_name) -> None:
    for key in ("cross_attention_dim", "in_channels", "sample_size"):
        a, b = base_unet.config.get(key), unet.config.get(key)
        if a != b:
            raise EraseError(
                f"the UNet in {str(folder)!r} does not fit the base {base_name} ({key} {b} vs {a}); "
                "pass the base it was trained from with --base"
            )


def _apply_lora(pipe, source: Path) -> None:
    try:
        if source.is_dir() and (source / "adapter_config.json").is_file():
            from peft import PeftModel

            pipe.unet = PeftModel.from_pretrained(pipe.unet, str(source)).merge_and_unload()
        else:
            pipe.load_lora_weights(str(source.parent), weight_name=source.name)
    except Exception as exc:
        raise EraseError(
            f"cannot apply LoRA weights {str(source)!r} to the base ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); is --base the model they were trained on?"
        ) from None


def _pipeline_generator(path: str | None, device: str) -> Generator:
    from .loading import EMBEDDED

    if path in (None, "", EMBEDDED):
        from .embedded.tiny_sd import DEFAULT_GUIDANCE, DEFAULT_STEPS, load_tiny_sd, tiny_sd_path

        folder = tiny_sd_path()
        pipe = load_tiny_sd(folder, device=device)
        world = pipe._erase_world
        return Generator(
            kind="pipeline",
            name="embedded tiny SD",
            pipe=pipe,
            guidance_scale=world.get("guidance_scale", DEFAULT_GUIDANCE),
            num_inference_steps=world.get("num_inference_steps", DEFAULT_STEPS),
            info=world,
        )
    from .loading import load_pipeline

    pipe, world = load_pipeline(path, device)
    return Generator(
        kind="pipeline",
        name=str(path),
        pipe=pipe,
        guidance_scale=world.get("guidance_scale", 7.5),
        num_inference_steps=world.get("num_inference_steps", 50),
        info=world,
    )


def _load_ddpm(path: Path | None, device: str, base=None) -> Generator:
    from .embedded.ddpm import (
        DEFAULT_GUIDANCE_SCALE,
        DEFAULT_INFERENCE_STEPS,
        NULL_CLASS,
        digits_ddpm_path,
        load_digits_ddpm,
    )

    if path is None:
        unet, sched, world = load_digits_ddpm(None, device=device)
        name = "embedded digits DDPM"
    else:
        from diffusers import DDPMScheduler, UNet2DModel

        unet_dir = path / "unet" if (path / "unet").is_dir() else path
        try:
            unet = UNet2DModel.from_pretrained(str(unet_dir)).to(device).eval()
        except Exception as exc:
            raise EraseError(
                f"cannot load the UNet2DModel in {str(unet_dir)!r} ({exc.__class__.__name__})"
            ) from None
        sched_dir = next(
            (
                d / "scheduler"
                for d in (path, Path(base) if base else None, digits_ddpm_path())
                if d is not None and (d / "scheduler").is_dir()
            ),
            None,
        )
        if sched_dir is None:
            raise EraseError(f"no scheduler/ next to {str(path)!r}; pass the base with --base")
        sched = DDPMScheduler.from_pretrained(str(sched_dir))
        world = _read_json(path / "world.json") or _read_json(sched_dir.parent / "world.json")
        name = str(path)
    return Generator(
        kind="ddpm",
        name=name,
        unet=unet,
        scheduler=sched,
        guidance_scale=world.get("guidance_scale", DEFAULT_GUIDANCE_SCALE),
        num_inference_steps=world.get("num_inference_steps", DEFAULT_INFERENCE_STEPS),
        null_class=world.get("null_class", NULL_CLASS),
        info=world,
    )


# -- resumable generation into a folder ----------------------------------------------------


def generate_to_folder(
    gen: Generator,
    items: Sequence[dict],
    folder: str | os.PathLike,
    *,
    batch_size: int = 8,
    num_inference_steps: int | None = None,
    default_guidance: float | None = None,
    progress: bool = True,
) -> list[Path]:
    """Generate ``items`` (dicts with ``prompt``, ``seed``, ``filename``, optional ``guidance``).

    Resumable: images already on disk are skipped; each image is written atomically, so an
    interrupted run leaves only complete files. Batches group equal guidance scales. The
    folder records the model and sampler settings (``generation.json``) and refuses to mix
    images made with other ones.
    """
    from tqdm.auto import tqdm

    from .io import atomic_write_json, save_image

    folder = Path(folder)
    signature = {
        "model": gen.name,
        "num_inference_steps": num_inference_steps or gen.num_inference_steps,
        "default_guidance": default_guidance
        if default_guidance is not None
        else gen.guidance_scale,
    }
    record = folder / "generation.json"
    if record.is_file() and _read_json(record) != signature:
        raise EraseError(
            f"{str(folder)!r} holds images generated with other settings "
            f"({_read_json(record)}); choose another --output_dir or delete that folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if not record.is_file():
        atomic_write_json(record, signature)
    paths = [folder / it["filename"] for it in items]
    todo = [(it, p) for it, p in zip(items, paths) if not p.exists()]
    if not todo:
        return paths

    def guidance_of(it):
        g = it.get("guidance")
        return g if g is not None else default_guidance

    todo.sort(key=lambda ip: (guidance_of(ip[0]) is None, guidance_of(ip[0]) or 0.0))
    bar = tqdm(total=len(todo), desc="generating", unit="img", disable=not progress)
    try:
        i = 0
        while i < len(todo):
            g = guidance_of(todo[i][0])
            chunk = [todo[i]]
            while (
                len(chunk) < batch_size
                and i + len(chunk) < len(todo)
                and guidance_of(todo[i + len(chunk)][0]) == g
            ):
                chunk.append(todo[i + len(chunk)])
            images = gen.generate(
                [it["prompt"] for it, _ in chunk],
                [it["seed"] for it, _ in chunk],
                guidance_scale=g,
                num_inference_steps=num_inference_steps,
                batch_size=batch_size,
            )
            for (_, p), im in zip(chunk, images):
                save_image(im, p)
            bar.update(len(chunk))
            i += len(chunk)
    finally:
        bar.close()
    return paths


# -- shared CLI flags ----------------------------------------------------------------------


def add_model_args(parser, *, classes: bool = False) -> None:
    """``--model/--base/--guidance_scale/--num_inference_steps/--batch_size/--device``."""
    g = parser.add_argument_group("model (default: the embedded world, offline)")
    g.add_argument(
        "--model",
        default=None,
        help="pipeline folder, UNet-only folder or LoRA weights (with --base)"
        + (", or a class-conditional DDPM run dir" if classes else "")
        + "; default: the embedded world",
    )
    g.add_argument(
        "--base",
        default=None,
        help="base pipeline for UNet-only or LoRA --model (default: none; the "
        "model is a full pipeline)",
    )
    g.add_argument("--guidance_scale", type=float, default=None, help="default: the model's")
    g.add_argument("--num_inference_steps", type=int, default=None, help="default: the model's")
    g.add_argument("--batch_size", type=int, default=8)
    g.add_argument("--device", default="cpu")


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise EraseError(f"{name} must be at least 1, got {value}")


def prompt_items(records, seeds: Sequence[int] = (0,)) -> list[dict]:
    """Generation items from prompt records: a record's own seed where it has one, else each of
    ``seeds``; file names ``{index:05d}_seed{seed}.png`` (stable, so reruns resume)."""
    items = []
    for r in records:
        for s in [r.seed] if r.seed is not None else list(seeds):
            items.append(
                {
                    "prompt": r.prompt,
                    "seed": int(s),
                    "guidance": r.guidance,
                    "filename": f"{r.index:05d}_seed{s}.png",
                }
            )
    return items
