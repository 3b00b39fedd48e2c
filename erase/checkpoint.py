"""Training checkpoints that survive crashes and never unpickle anything.

Why not ``accelerator.save_state``: it writes in place (a kill mid-save leaves a folder that
looks complete) and loads the optimizer with a plain ``torch.load``. Here a checkpoint is built
under a temporary name and renamed into place with a ``.complete`` marker; weights are
safetensors, and optimizer/scheduler state dicts are read with ``torch.load(weights_only=True)``.

Test hook: ``ERASE_TEST_SAVE_PAUSE=checkpoint-4:30`` sleeps 30 s in the middle of writing
``checkpoint-4`` (weights written, optimizer not yet), so the crash-safety tests can kill a
process mid-save deterministically. Unset, it does nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import EraseError
from .io import COMPLETE_MARKER, atomic_dir, is_complete

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first (incomplete ones are ignored)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for p in output_dir.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and is_complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def resolve_checkpoint(spec: str | None, output_dir: str | Path) -> Path | None:
    """``latest`` → newest complete checkpoint (None if there is none yet); a path → itself."""
    if not spec:
        return None
    if spec == "latest":
        ckpts = list_checkpoints(output_dir)
        return ckpts[-1] if ckpts else None
    path = Path(spec)
    if not path.is_absolute() and not path.exists():
        path = Path(output_dir) / spec
    if not path.is_dir() or not is_complete(path):
        raise EraseError(
            f"checkpoint {spec!r} not found or incomplete; pass 'latest' or a checkpoint-N folder "
            "written by a finished save"
        )
    return path


def _test_pause(path: Path) -> None:
    name, _, seconds = os.environ.get("ERASE_TEST_SAVE_PAUSE", "").rpartition(":")
    if seconds and name == path.name:
        time.sleep(float(seconds))


def save_checkpoint(
    path: Path,
    *,
    params: dict[str, torch.Tensor],
    optimizer,
    lr_scheduler,
    state: dict,
    mask: dict[str, torch.Tensor] | None = None,
    total_limit: int | None = None,
) -> Path:
    with atomic_dir(path) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in params.items()},
            str(tmp / "trainable.safetensors"),
        )
        _test_pause(path)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(lr_scheduler.state_dict(), tmp / "scheduler.pt")
        if mask is not None:
            save_file(
                {k: v.to(torch.uint8).contiguous().cpu() for k, v in mask.items()},
                str(tmp / "saliency_mask.safetensors"),
            )
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if total_limit:
        for old in list_checkpoints(path.parent)[:-total_limit]:
            (old / COMPLETE_MARKER).unlink(missing_ok=True)  # first: a kill mid-delete leaves
            # no folder that still claims to be complete
            shutil.rmtree(old, ignore_errors=True)
    return path


def _safe_torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an untrusted pickle payload lands here, unexecuted
        raise EraseError(
            f"refusing to load {str(path)!r}: not a plain tensor checkpoint ({type(exc).__name__}); "
            "only safetensors and weights-only torch files are read"
        ) from None


def load_checkpoint(path: Path, *, params: dict[str, torch.Tensor], optimizer, lr_scheduler):
    """Restore weights, optimizer and scheduler in place; returns (trainer state, mask)."""
    weights = load_file(str(path / "trainable.safetensors"))
    missing = sorted(set(params) - set(weights))
    if missing:
        raise EraseError(
            f"checkpoint {str(path)!r} lacks {len(missing)} trainable tensors (e.g. {missing[0]}); "
            "it was written with other --train_params or another model: resume with the same settings"
        )
    with torch.no_grad():
        for name, p in params.items():
            w = weights[name]
            if w.shape != p.shape:
                raise EraseError(
                    f"checkpoint {str(path)!r} has {name} of shape {tuple(w.shape)}, the model "
                    f"{tuple(p.shape)}: it belongs to another model; use a matching --output_dir"
                )
            p.copy_(w.to(p.dtype))
    optimizer.load_state_dict(_safe_torch_load(path / "optimizer.pt"))
    lr_scheduler.load_state_dict(_safe_torch_load(path / "scheduler.pt"))
    mask = None
    if (path / "saliency_mask.safetensors").exists():
        mask = {k: v.bool() for k, v in load_file(str(path / "saliency_mask.safetensors")).items()}
    state = json.loads((path / "trainer_state.json").read_text())
    return state, mask
