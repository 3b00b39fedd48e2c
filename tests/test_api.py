"""The Python API and the installed commands: the same jobs as the scripts, without a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import cli_env, free_port  # noqa: E402

BIN = Path(sys.executable).parent


def test_erase_concept_function_returns_the_run_and_its_model(tiny_models, tmp_path):
    """``erase.erase_concept`` runs the ``erase-concept`` job: the same output folder, config
    and step log, and ``load()`` gives the erased pipeline (its UNet differs from the base)."""
    import erase

    result = erase.erase_concept(
        str(tiny_models["sd"]),
        "three",
        method="joint",
        output_dir=tmp_path / "out",
        max_train_steps=2,
        train_batch_size=2,
        images_per_prompt=1,
        retain_images_per_prompt=1,
        gen_steps=2,
        no_eval=True,
    )
    assert result.output_dir == tmp_path / "out"
    assert result.config["method"] == "joint" and result.config["concept"] == "three"
    assert len(json.loads((result.output_dir / "step_log.json").read_text())) == 2
    pipe = result.load()
    from diffusers import StableDiffusionPipeline

    original = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    moved = [
        n
        for (n, a), (_, b) in zip(
            pipe.unet.state_dict().items(), original.unet.state_dict().items()
        )
        if not torch.equal(a, b)
    ]
    assert moved


def test_erase_class_function_and_bad_options(tiny_models, tmp_path):
    import erase

    result = erase.erase_class(
        3,
        str(tiny_models["ddpm"]),
        method="lur",
        output_dir=tmp_path / "out",
        max_train_steps=2,
        train_batch_size=4,
        no_eval=True,
    )
    assert result.config["forget_class"] == [3]
    assert type(result.load()).__name__ == "UNet2DModel"
    with pytest.raises(erase.EraseError, match="unknown method 'nope'"):
        erase.erase_class(3, str(tiny_models["ddpm"]), method="nope", output_dir=tmp_path / "x")
    with pytest.raises(erase.EraseError, match="invalid options"):
        erase.erase_class(3, output_dir=tmp_path / "y", no_such_option=1)


def test_write_report_function(tiny_models, tmp_path):
    import erase

    run = erase.erase_class(
        3, str(tiny_models["ddpm"]), output_dir=tmp_path / "run", max_train_steps=1,
        train_batch_size=4, no_eval=True,
    )  # fmt: skip
    report = erase.write_report([run.output_dir], tmp_path / "report")
    assert report.name == "report.md" and "Erasure report" in report.read_text()


@pytest.mark.parametrize(
    "command", ["erase-concept", "erase-class", "erase-sample-grid", "erase-report"]
)
def test_console_commands_are_installed(command):
    """``pip install`` gives the commands; ``--help`` answers without a checkout's scripts."""
    exe = BIN / command
    assert exe.exists(), f"{command} is not installed next to {sys.executable}"
    proc = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, env=cli_env(), cwd="/", timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout and "--output" in proc.stdout


def test_accelerate_launch_module_form(tiny_models, tmp_path):
    """``accelerate launch -m erase.cli.erase_class`` runs the job from anywhere."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--cpu",
        "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        "-m", "erase.cli.erase_class", "--pretrained_model", str(tiny_models["ddpm"]),
        "--forget_class", "3", "--output_dir", str(out), "--max_train_steps", "1",
        "--train_batch_size", "4", "--no_eval",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_concept_files_are_found_from_anywhere():
    """The concept files (the checkout's top-level prompts/ here; erase/prompts in a wheel, see
    test_packaging.py) are found without a checkout's working directory."""
    from erase.concepts import known_concepts, resolve_concept

    checkout = Path(__file__).resolve().parents[1] / "prompts" / "concepts"
    assert known_concepts() == sorted(p.stem for p in checkout.glob("*.txt"))
    assert {"nudity", "van_gogh", "three", "inverted"} <= set(known_concepts())
    cwd = os.getcwd()
    try:
        os.chdir("/")
        assert resolve_concept("nudity").forget
    finally:
        os.chdir(cwd)
