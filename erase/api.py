"""The Python API: the command-line jobs as functions, for notebooks and other programs.

    import erase
    result = erase.erase_concept("path/to/sd-folder", "van_gogh", method="lur",
                                 output_dir="OUT", max_train_steps=200)
    pipe = result.load()

Each function turns its keyword options into the job's flags and runs the same code as the
command (``erase.cli.*``), so a run made here and one made with ``accelerate launch`` are the
same run. Bad input raises :class:`erase.EraseError` with the message the command would print.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EraseError


@dataclass
class ErasureResult:
    """Where a run wrote its outputs, with what it recorded."""

    output_dir: Path
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def load(self, device: str = "cpu"):
        """The erased model: a diffusers pipeline (concept runs saved as a pipeline, or a
        UNet/LoRA over its base) or the class-conditional ``UNet2DModel`` (class runs)."""
        from .generators import load_generator

        gen = load_generator(str(self.output_dir), device=device)
        return gen.pipe if gen.kind == "pipeline" else gen.unet


def _argv(positional: dict, options: dict) -> list[str]:
    """``{"max_train_steps": 5, "no_eval": True, "concept": ["a", "b"]}`` → flags."""
    argv: list[str] = []
    for key, value in {**positional, **options}.items():
        if value is None or value is False:
            continue
        flag = f"--{key}"
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def _run(module, argv: list[str]) -> Path | None:
    try:
        args = module.parse_args(argv)
    except SystemExit as exc:  # argparse already printed which flag it did not take
        raise EraseError(f"invalid options {argv!r} (see the message above)") from exc
    return module.run(args)


def _result(out: Path | None) -> ErasureResult:
    if out is None:  # a non-main process of a multi-process launch
        return None
    out = Path(out)

    def read(name):
        path = out / name
        return json.loads(path.read_text()) if path.exists() else {}

    return ErasureResult(out, read("erase_config.json"), read("metrics.json"))


def erase_concept(
    model: str | None = None,
    concept: str | list[str] | None = None,
    method: str = "lur",
    *,
    output_dir: str | Path,
    **options,
) -> ErasureResult:
    """Erase ``concept`` from the text-to-image pipeline ``model`` (a folder or a Hub id; None:
    the embedded world). ``options`` are ``erase-concept``'s flags without the dashes, e.g.
    ``train_params="xattn", max_train_steps=200, overwrite=True``."""
    from .cli import erase_concept as job

    concepts = [concept] if isinstance(concept, str) else concept
    argv = _argv(
        {
            "pretrained_model_name_or_path": model,
            "concept": concepts,
            "method": method,
            "output_dir": output_dir,
        },
        options,
    )
    return _result(_run(job, argv))


def erase_class(
    forget_class: int | list[int],
    model: str | None = None,
    method: str = "lur",
    *,
    output_dir: str | Path,
    **options,
) -> ErasureResult:
    """Erase class(es) ``forget_class`` from a class-conditional ``UNet2DModel`` folder
    (None: the embedded digits DDPM). ``options`` are ``erase-class``'s flags."""
    from .cli import erase_class as job

    classes = [forget_class] if isinstance(forget_class, int) else list(forget_class)
    argv = _argv(
        {
            "pretrained_model": model,
            "forget_class": classes,
            "method": method,
            "output_dir": output_dir,
        },
        options,
    )
    return _result(_run(job, argv))


def write_report(run_dirs: list[str | Path], output_dir: str | Path, **options) -> Path:
    """One Markdown report (``report.md`` and figures) over finished runs."""
    from .cli import report as job

    argv = [*map(str, run_dirs), *_argv({"output_dir": output_dir}, options)]
    return Path(_run(job, argv))


__all__ = ["ErasureResult", "erase_class", "erase_concept", "write_report"]
