"""Loading Stable Diffusion pipelines: local folders, the Hub cache, or the Hub itself.

Fails fast with one line when a Hub id cannot be reached (no network, private repo) or a
folder is not a pipeline, instead of a long retry loop or a traceback from deep inside.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import EraseError

EMBEDDED = "embedded:tiny_sd"


def _looks_like_hub_id(spec: str) -> bool:
    return spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not Path(spec).exists()


def resolve_pipeline_folder(spec: str | None) -> tuple[Path, str]:
    """A local pipeline folder for ``spec`` (a folder, a Hub id, or None = embedded world)."""
    if spec in (None, "", EMBEDDED):
        from .embedded.tiny_sd import tiny_sd_path

        return tiny_sd_path(), EMBEDDED
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EraseError(f"{spec!r} is a file; pass a diffusers pipeline folder")
        if not (path / "model_index.json").exists():
            hint = (
                " (it holds only a UNet: pass the base pipeline)"
                if (path / "config.json").exists()
                else ""
            )
            raise EraseError(
                f"{spec!r} is not a diffusers pipeline folder: no model_index.json{hint}; "
                "pass a folder written by StableDiffusionPipeline.save_pretrained"
            )
        return path, spec
    if not _looks_like_hub_id(spec):
        raise EraseError(f"{spec!r} is neither an existing folder nor a Hub id like 'org/model'")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec, local_files_only=True)), spec
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        reachable = False
    else:
        from huggingface_hub import model_info

        try:
            model_info(spec, timeout=10)
            reachable = True
        except Exception:
            reachable = False
    if not reachable:
        raise EraseError(
            f"cannot reach the Hugging Face Hub for {spec!r} and it is not in the local cache; "
            f"on a machine with internet run `hf download {spec} --local-dir DIR` "
            "and pass --pretrained_model_name_or_path DIR"
        )
    try:
        return Path(
            snapshot_download(spec, allow_patterns=["*.json", "*.txt", "*.safetensors"])
        ), spec
    except Exception as exc:
        raise EraseError(f"downloading {spec!r} failed: {exc}") from None


def load_sd_pipeline(spec: str | None, torch_dtype=None):
    """(pipeline, folder, name) of a text-to-image pipeline of a supported family (SD 1.x/2.x,
    SDXL; :mod:`erase.families`), with one clear error for any other; safety checkers are
    dropped (erasure is judged on the outputs)."""
    from .families import family_for_index

    folder, name = resolve_pipeline_folder(spec)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except ValueError as exc:
        raise EraseError(
            f"{str(folder / 'model_index.json')!r} is not valid JSON ({exc})"
        ) from None
    family = family_for_index(index, repr(str(folder)))
    kwargs = dict(family.load_kwargs)
    if torch_dtype is not None:
        kwargs["torch_dtype"] = torch_dtype
    try:
        pipe = family.pipeline_cls.from_pretrained(folder, **kwargs)
    except Exception as exc:
        raise EraseError(f"cannot load the pipeline in {str(folder)!r}: {exc}") from None
    return pipe, folder, name


def load_pipeline(path: str, device: str = "cpu"):
    """(any ``DiffusionPipeline``, its world record) for sampling; same resolution and errors
    as :func:`load_sd_pipeline`, which the trainer uses because it needs the SD components."""
    from diffusers import DiffusionPipeline

    folder, _ = resolve_pipeline_folder(path)  # local folder, hub cache, or one clear error
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except ValueError:
        index = {}
    # the safety checker is dropped where the family has one (SDXL has none)
    kwargs = {"safety_checker": None} if "safety_checker" in index else {}
    try:
        pipe = DiffusionPipeline.from_pretrained(str(folder), **kwargs)
    except Exception as exc:
        raise EraseError(
            f"cannot load pipeline {path!r} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    from .embedded.tiny_sd import read_world

    world = read_world(folder)
    pipe._erase_world = world
    return pipe, world
