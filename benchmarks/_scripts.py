"""Loading the project's scripts in-process, for the benchmarks that drive them.

The scripts are files, not package modules (users run them with ``accelerate launch``), so
the benchmarks import them by path; one function here instead of one copy per benchmark.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str):
    """The module of ``ROOT/relpath`` (registered in ``sys.modules`` under its file stem)."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod


def machine_record(script: str) -> dict:
    """Where and how a benchmark ran, for the head of its JSON output."""
    import platform
    import time

    import torch

    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


# ``--smoke``: the jobs' flags for a run of a few seconds on the embedded world. A smoke run
# checks that a benchmark runs end to end and writes its tables; its numbers mean nothing.
CLASS_SMOKE = [
    "--max_train_steps",
    "2",
    "--train_batch_size",
    "4",
    "--eval_samples_per_class",
    "2",
    "--num_inference_steps",
    "2",
]
CONCEPT_SMOKE = [
    "--max_train_steps",
    "2",
    "--train_batch_size",
    "2",
    "--images_per_prompt",
    "1",
    "--retain_images_per_prompt",
    "1",
    "--gen_steps",
    "2",
    "--eval_images_per_class",
    "2",
]
SMOKE_HELP = "a few seconds on the embedded world: checks that the benchmark runs end to end"
