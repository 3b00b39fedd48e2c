"""Every number and path flag of a job, checked before any loading or generation starts.

``validate_args(args)`` is the first line of each job's ``run(args)``: it looks at every flag
it knows by name (the jobs share their flag names, as diffusers' training scripts do) and
raises one ``EraseError`` that names the flag, the value and what is allowed. Flags it does not
know are still checked for what no flag may be: a NaN or an infinite number. No torch import:
a bad flag is reported in the time it takes to parse the command line.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import EraseError

# -- numbers ---------------------------------------------------------------------------------
# name -> (lowest allowed, lowest is allowed?, highest, highest is allowed?, description)
_INF = math.inf
NUMBER_RULES: dict[str, tuple[float, bool, float, bool]] = {}
for _name in (
    "max_train_steps",
    "train_batch_size",
    "gradient_accumulation_steps",
    "images_per_prompt",
    "retain_images_per_prompt",
    "gen_steps",
    "gen_batch_size",
    "eval_images_per_class",
    "eval_samples_per_class",
    "num_inference_steps",
    "num_images_per_prompt",
    "lora_rank",
    "resolution",
    "inner_steps",
    "batch_size",
    "checkpoints_total_limit",
    "samples",
    "samples_per_class",
    "limit",
    "repeats",
    "eval_every",
    "stop_samples",
    "resist_steps",
    "resist_every",
):
    NUMBER_RULES[_name] = (1, True, _INF, False)
for _name in (
    "seed",
    "seeds",
    "checkpointing_steps",
    "validation_steps",
    "lr_warmup_steps",
    "monitor_every",
    "classes",
    "forget_class",
    "anchor_classes",
    "null_class",
    "warmup",
    "stop_patience",
    "stop_confirm",
    "min_train_steps",
):
    NUMBER_RULES[_name] = (0, True, _INF, False)
for _name in (
    "learning_rate",
    "inner_lr",
    "max_grad_norm",
    "ga_bound",
    "judge_threshold",
    "resist_lr",
):
    NUMBER_RULES[_name] = (0, False, _INF, False)
for _name in (
    "retain_weight",
    "retain_weight_at_theta",
    "adam_weight_decay",
    "esd_eta",
    "guidance_scale",
    "gen_guidance_scale",
    "uce_lambda",
    "uce_erase_scale",
    "relearn_scale",
    "relearn_weight",
    "adv_radius",
    "resist_weight",
):
    NUMBER_RULES[_name] = (0, True, _INF, False)
NUMBER_RULES["retain_null_prob"] = (0, True, 1, False)  # as ClassErasureTask
NUMBER_RULES["saliency_sparsity"] = (0, True, 1, False)
NUMBER_RULES["threshold"] = (0, True, 1, True)

# -- paths -----------------------------------------------------------------------------------
TEXT_FILES = ("forget_prompts", "retain_prompts", "captions", "styles", "objects")
EXISTING_DIRS = ("forget_images", "pretrained_model", "images", "real", "fake")
WRITABLE_DIRS = ("output_dir", "cache_dir", "images_dir")
WRITABLE_FILES = ("output",)


def _describe(lo, lo_ok, hi, hi_ok) -> str:
    if hi == _INF:
        return f"a number {'>=' if lo_ok else '>'} {lo:g}"
    return f"a number in {'[' if lo_ok else '('}{lo:g}, {hi:g}{']' if hi_ok else ')'}"


def check_number(flag: str, value, lo=-_INF, lo_ok=True, hi=_INF, hi_ok=True) -> None:
    """``value`` (or each of a list) is a finite number within the bounds; else EraseError."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        ok = math.isfinite(v)
        ok = ok and (v > lo or (lo_ok and v == lo)) and (v < hi or (hi_ok and v == hi))
        if not ok:
            want = (
                "a finite number" if lo == -_INF and hi == _INF else _describe(lo, lo_ok, hi, hi_ok)
            )
            raise EraseError(f"--{flag} must be {want}, got {v!r}")


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(flag: str, value) -> None:
    """A folder that exists and is writable, or can be created (its nearest existing ancestor
    is a writable folder)."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise EraseError(f"--{flag} {str(value)!r} is not writable: it is a file, not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise EraseError(
            f"--{flag} {str(value)!r} is not writable: {str(base)!r} is a file, not a folder"
        )
    if not os.access(base, os.W_OK | os.X_OK):
        raise EraseError(f"--{flag} {str(value)!r} is not writable ({str(base)!r} is not)")


def check_writable_file(flag: str, value) -> None:
    path = Path(value)
    if path.is_dir():
        raise EraseError(f"--{flag} {str(value)!r} is a folder; give a file name")
    check_writable_dir(flag, path.parent if str(path.parent) else ".")


def check_existing_dir(flag: str, value) -> None:
    path = Path(value)
    if not path.exists():
        raise EraseError(f"--{flag} {str(value)!r} is not a folder: it does not exist")
    if not path.is_dir():
        raise EraseError(f"--{flag} {str(value)!r} is not a folder: it is a file")


def read_text_file(path, what: str) -> str:
    """The text of a user's file (UTF-8, a BOM allowed); one clear EraseError for a missing
    file, a folder, an unreadable file, a binary file or another encoding."""
    p = Path(path)
    if not p.exists():
        raise EraseError(f"{what} {str(path)!r} does not exist")
    if not p.is_file():
        raise EraseError(f"{what} {str(path)!r} is not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise EraseError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if b"\0" in data[:65536]:
        raise EraseError(
            f"{what} {str(path)!r} is a binary file; give a text file, one prompt per line"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EraseError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def check_text_file(flag: str, value) -> None:
    read_text_file(value, f"--{flag}")


def check_prompts(flag: str, value) -> None:
    """``--prompts``: free text, or one file (txt/csv) that must then be readable text."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or not any(str(v).strip() for v in items):
        raise EraseError(f"--{flag} is empty; give prompts or a prompt file")
    if len(items) == 1:
        p = Path(str(items[0]))
        if p.exists() or p.suffix.lower() in (".txt", ".csv"):
            check_text_file(flag, p)


def validate_args(args) -> None:
    """Check every number and path flag in ``args`` (a Namespace) before any work starts."""
    for name, value in sorted(vars(args).items()):
        if value is None:
            continue
        if name in NUMBER_RULES:
            check_number(name, value, *NUMBER_RULES[name])
        else:
            check_number(name, value)  # no flag may be NaN or infinite
        if name in TEXT_FILES:
            check_text_file(name, value)
        elif name in EXISTING_DIRS:
            check_existing_dir(name, value)
        elif name in WRITABLE_DIRS:
            check_writable_dir(name, value)
        elif name in WRITABLE_FILES:
            check_writable_file(name, value)
        elif name == "prompts":
            check_prompts(name, value)
        elif name == "train_data" and str(value) != "digits":
            check_existing_dir(name, value)


def prompts_arg(values):
    """A ``--prompts`` list (``nargs="+"``) as the prompt loaders take it: None, one string (a
    prompt file, or prompts separated by '|', the older form) or a list of prompts."""
    if values is None or isinstance(values, str):
        return values
    return values[0] if len(values) == 1 else list(values)
