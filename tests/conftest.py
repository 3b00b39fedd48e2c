"""Shared fixtures: tiny models built once per test session, and the reference runs.

The models are random (untrained) but real diffusers models saved with ``save_pretrained``:
what the reliability tests check (resume, crashes, ranks, loading) does not depend on them
having learned anything, and they make every training step take milliseconds.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import CLASS_ARGS, CONCEPT_ARGS, assert_ok, cli_env, run_cli  # noqa: E402


def pytest_configure(config):
    """One torch thread per xdist worker: two workers already fill the two cores a CI machine
    has, and each in-process test at torch's default (one thread per core) oversubscribes them
    (measured: the attack tests 57 s → 43 s wall, half the CPU time). Launched jobs get the same
    through ``helpers.cli_env``, and any other process a test starts inherits the same."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")


REFERENCE_STEPS = 4  # steps of the uninterrupted reference runs; resume tests split them 2 + 2


def _tiny_class_unet(widths=(16, 32)):
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=widths,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=11,
        norm_num_groups=8,
    )


@pytest.fixture
def float64_default():
    """Double precision for exact comparisons, restored after the test (it is process-wide)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """``ddpm``: a class-conditional UNet2DModel (10 classes + null class 10) with a cosine
    DDPM scheduler; ``ddpm_other``: the same architecture with other widths (for mismatched
    checkpoints); ``sd``: a tiny StableDiffusionPipeline from ``erase.embedded.tiny_sd``."""
    import torch
    from diffusers import DDPMScheduler

    from erase.embedded.tiny_sd import (
        build_text_encoder,
        build_tokenizer,
        build_unet,
        build_vae,
        make_pipeline,
    )

    root = tmp_path_factory.mktemp("tiny_models")
    paths = {"ddpm": root / "ddpm", "ddpm_other": root / "ddpm_other", "sd": root / "sd"}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for name, widths in (("ddpm", (16, 32)), ("ddpm_other", (8, 16))):
            _tiny_class_unet(widths).save_pretrained(paths[name] / "unet")
            DDPMScheduler(beta_schedule="squaredcos_cap_v2").save_pretrained(
                paths[name] / "scheduler"
            )
        pipe = make_pipeline(build_vae(), build_text_encoder(), build_tokenizer(), build_unet())
        pipe.save_pretrained(paths["sd"])
    return paths


@pytest.fixture(scope="session")
def cli_home(tmp_path_factory) -> Path:
    """An empty HF_HOME for the launched CLIs (no accelerate config, no hub cache)."""
    return tmp_path_factory.mktemp("hf_home")


@pytest.fixture(scope="session")
def env(cli_home) -> dict:
    return cli_env(home=cli_home)


def class_run_args(models: dict, out: Path, steps: int = REFERENCE_STEPS, extra=()) -> list:
    return [
        "--pretrained_model",
        models["ddpm"],
        "--output_dir",
        out,
        "--max_train_steps",
        steps,
        "--checkpointing_steps",
        2,
        *CLASS_ARGS,
        *extra,
    ]


def concept_run_args(models: dict, out: Path, steps: int = REFERENCE_STEPS, extra=()) -> list:
    return [
        "--pretrained_model_name_or_path",
        models["sd"],
        "--output_dir",
        out,
        "--max_train_steps",
        steps,
        "--checkpointing_steps",
        2,
        *CONCEPT_ARGS,
        *extra,
    ]


@pytest.fixture(scope="session")
def launch_pool():
    """Runs independent CLI launches two at a time: each launch is single-threaded and mostly
    imports, so on 2 cores two of them take the wall time of one."""
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        yield pool


@pytest.fixture(scope="session")
def references(tiny_models, env, launch_pool, tmp_path_factory) -> dict:
    """The uninterrupted 4-step runs (lur; checkpoints at 2 and 4) of both scripts, launched
    together: ``{name: (output dir, future)}``."""
    root = tmp_path_factory.mktemp("references")
    runs = {
        "class": ("scripts/erase_class.py", class_run_args(tiny_models, root / "class")),
        "concept": ("scripts/erase_concept.py", concept_run_args(tiny_models, root / "concept")),
    }
    return {
        name: (root / name, launch_pool.submit(run_cli, script, args, env))
        for name, (script, args) in runs.items()
    }


def _reference(references, name) -> Path:
    out, future = references[name]
    assert_ok(future.result())
    return out


@pytest.fixture(scope="session")
def class_reference(references) -> Path:
    """The uninterrupted 4-step ``erase_class.py`` run."""
    return _reference(references, "class")


@pytest.fixture(scope="session")
def concept_reference(references) -> Path:
    """The uninterrupted 4-step ``erase_concept.py`` run (erasing 'three')."""
    return _reference(references, "concept")
