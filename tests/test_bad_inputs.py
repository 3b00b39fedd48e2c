"""A catalogue of bad inputs across the CLIs: each must end with a non-zero exit code and
exactly one ``error:`` line on stderr that names the problem, never a traceback.

Most cases run the script with plain ``python`` (what ``accelerate launch`` adds — a launcher
process — is irrelevant to argument checking); the cases marked ``accelerate`` go through
``accelerate launch --quiet`` (without ``--quiet`` accelerate itself reports a failed child
with a ``CalledProcessError`` traceback, which no script can prevent).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_clean_error, run_cli

CLASS = "scripts/erase_class.py"
CONCEPT = "scripts/erase_concept.py"
FAST_CONCEPT = [
    "--no_eval",
    "--images_per_prompt",
    "1",
    "--gen_steps",
    "1",
    "--max_train_steps",
    "1",
]


@pytest.fixture(scope="module")
def bad(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """Broken files and folders for the cases below."""
    import numpy as np
    import torch
    from PIL import Image

    d = tmp_path_factory.mktemp("bad_inputs")
    files = {"dir": d}
    (d / "empty.txt").write_text("# only a comment\n\n")
    files["empty_prompts"] = d / "empty.txt"
    (d / "malformed.txt").write_text("a prompt before any section\n[forget]\na red car\n")
    files["malformed_concept"] = d / "malformed.txt"
    # an image folder (one subfolder a class) in which one file is not an image
    images = d / "images"
    for c in range(10):
        (images / str(c)).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 25 * c, np.uint8)).save(images / str(c) / "a.png")
    (images / "3" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n but truncated")
    files["corrupt_images"] = images
    (d / "empty_images").mkdir()
    (d / "two_images").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 100 * i, np.uint8)).save(d / "two_images" / f"{i}.png")
    files["empty_images"] = d / "empty_images"
    (d / "not_a_model").mkdir()
    (d / "not_a_model" / "notes.txt").write_text("weights will go here\n")
    files["not_a_model"] = d / "not_a_model"
    (d / "a_file").write_text("a regular file, so nothing can be created under it\n")
    files["under_a_file"] = d / "a_file" / "out"
    earlier = d / "earlier_run"
    earlier.mkdir()
    (earlier / "erase_config.json").write_text(json.dumps({"task": "class"}))
    (earlier / ".complete").write_text("")
    files["earlier_run"] = earlier
    (d / "no_prompt_column.csv").write_text("text,seed\na handwritten digit three,1\n")
    files["no_prompt_column"] = d / "no_prompt_column.csv"
    # a checkpoint of another model (same layer names, other widths), written by the library
    from diffusers import UNet2DModel

    from erase.checkpoint import save_checkpoint

    other = UNet2DModel.from_pretrained(tiny_models["ddpm_other"] / "unet")
    opt = torch.optim.AdamW(other.parameters())
    save_checkpoint(
        d / "other_model_run" / "checkpoint-2",
        params=dict(other.named_parameters()),
        optimizer=opt,
        lr_scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
        state={"step": 2, "loss_scale": 1.0, "good_steps": 0, "log": [], "method": "lur"},
    )
    files["other_model_run"] = d / "other_model_run"
    # `import peft` fails in the launched process, as on an install without peft: a
    # sitecustomize that blocks the module (find_spec → None, import → ImportError)
    shim = d / "no_peft"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\n\nsys.modules['peft'] = None\n")
    files["no_peft"] = shim
    return files


def _class(m, b, *extra, out=None):
    return [
        "--pretrained_model",
        m["ddpm"],
        "--forget_class",
        "3",
        "--no_eval",
        "--output_dir",
        out or b["dir"] / "out_class",
        *extra,
    ]


def _concept(m, b, *extra, model=None, out=None):
    return [
        "--pretrained_model_name_or_path",
        model or m["sd"],
        "--output_dir",
        out or b["dir"] / "out_concept",
        *FAST_CONCEPT,
        *extra,
    ]


# (id, script, args(models, bad files), extra env, keyword in the error line, launcher)
CASES = [
    ("unknown_method", CLASS, lambda m, b: _class(m, b, "--method", "forget_harder"), None,
     "unknown method", "python"),
    ("unknown_concept", CONCEPT, lambda m, b: _concept(m, b, "--concept", "dinosaur"), None,
     "unknown concept", "python"),
    ("unknown_param_set", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", "--train_params", "attention"), None,
     "--train_params", "python"),
    ("anchor_term_with_retain_first", CLASS,
     lambda m, b: _class(m, b, "--meta_order", "retain_first", "--retain_weight_at_theta", "1"),
     None, "--retain_weight_at_theta", "python"),
    # lur's default order is retain_first: the anchor term alone names the flag to add
    ("anchor_term_with_lur_default_order", CLASS,
     lambda m, b: _class(m, b, "--retain_weight_at_theta", "1"),
     None, "--meta_order forget_first", "python"),
    ("class_out_of_range", CLASS, lambda m, b: _class(m, b, "--forget_class", "12"), None,
     "out of range", "python"),
    ("null_class_as_forget_class", CLASS, lambda m, b: _class(m, b, "--forget_class", "10"),
     None, "out of range", "python"),
    ("empty_prompt_file", CONCEPT,
     lambda m, b: _concept(m, b, "--forget_prompts", b["empty_prompts"]), None,
     "no prompts", "python"),
    ("malformed_concept_file", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", b["malformed_concept"]), None,
     "outside a section", "python"),
    ("corrupt_image_in_train_data", CLASS,
     lambda m, b: _class(m, b, "--train_data", b["corrupt_images"]), None,
     "cannot read image", "python"),
    ("corrupt_image_in_forget_images", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", "--method", "esd",
                           "--forget_images", b["corrupt_images"] / "3"), None,
     "cannot read image", "python"),
    ("missing_class_model", CLASS,
     lambda m, b: ["--pretrained_model", b["dir"] / "nowhere", "--forget_class", "3",
                   "--output_dir", b["dir"] / "out_class"], None, "not a folder", "python"),
    ("missing_pipeline_path", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", model=b["dir"] / "no" / "such" / "dir"),
     None, "neither an existing folder", "python"),
    ("folder_is_not_a_pipeline", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", model=b["not_a_model"]), None,
     "not a diffusers pipeline", "python"),
    ("hub_id_offline", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", model="some-org/some-model"),
     {"HF_HUB_OFFLINE": "1"}, "cannot reach the Hugging Face Hub", "python"),
    ("output_dir_under_a_file", CLASS, lambda m, b: _class(m, b, out=b["under_a_file"]), None,
     "not writable", "python"),
    ("output_dir_holds_earlier_run", CLASS, lambda m, b: _class(m, b, out=b["earlier_run"]),
     None, "holds an earlier run", "accelerate"),
    ("checkpoint_of_another_model", CLASS,
     lambda m, b: _class(m, b, "--resume_from_checkpoint", "latest",
                         out=b["other_model_run"]), None, "another model", "python"),
    ("missing_checkpoint", CLASS,
     lambda m, b: _class(m, b, "--resume_from_checkpoint", "checkpoint-99",
                         out=b["dir"] / "fresh_run"), None, "not found or incomplete", "python"),
    ("lora_format_without_lora", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", "--save_format", "lora",
                           "--train_params", "full"), None, "--save_format lora", "python"),
    ("class_model_to_erase_concept", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", model=m["ddpm"]), None,
     "not a diffusers pipeline", "python"),
    ("sd_pipeline_to_erase_class", CLASS,
     lambda m, b: ["--pretrained_model", m["sd"], "--forget_class", "3",
                   "--output_dir", b["dir"] / "out_class"], None, "class-conditional",
     "python"),
    ("lora_without_peft", CONCEPT,
     lambda m, b: _concept(m, b, "--concept", "three", "--method", "esd",
                           "--train_params", "lora"), "no_peft", "needs peft", "python"),
    ("zero_steps", CLASS, lambda m, b: _class(m, b, "--max_train_steps", "0"), None,
     "--max_train_steps", "python"),
    ("eval_csv_without_prompt_column", "eval/nudity.py",
     lambda m, b: ["--prompts", b["no_prompt_column"], "--model", m["sd"],
                   "--output_dir", b["dir"] / "out_eval"], None, "'prompt' column", "python"),
    ("eval_empty_image_folder", "eval/fid.py",
     lambda m, b: ["--fake", b["empty_images"], "--real", b["dir"] / "two_images",
                   "--feature", "digits", "--output_dir", b["dir"] / "out_eval"], None,
     "holds no images", "python"),
]  # fmt: skip


CASE_IDS = [c[0] for c in CASES]
TEST_NAME = "test_bad_input_gives_one_clear_error_line"


@pytest.fixture(scope="module")
def launched(request, tiny_models, bad, env, launch_pool) -> dict:
    """Every selected case, launched up front two at a time: ``{case id: future}``."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "originalname", None) == TEST_NAME
    ]
    futures = {}
    for case_id, script, make_args, extra_env, _, launcher in CASES:
        if case_id not in selected:
            continue
        run_env = dict(env)
        if extra_env == "no_peft":
            run_env["PYTHONPATH"] = str(bad["no_peft"])
        elif extra_env:
            run_env.update(extra_env)
        args = make_args(tiny_models, bad)
        futures[case_id] = launch_pool.submit(
            run_cli, script, args, run_env, launcher=launcher, timeout=300
        )
    return futures


@pytest.mark.slow
@pytest.mark.parametrize("case", CASE_IDS, ids=CASE_IDS)
def test_bad_input_gives_one_clear_error_line(launched, case):
    keyword = CASES[CASE_IDS.index(case)][4]
    assert_clean_error(launched[case].result(), keyword)
