"""Every number and path flag of the jobs is checked before any work: a catalogue per script.

Most cases parse the command line and run the check in-process (what the job's ``run(args)``
does first); two cases launch the real scripts to see the one ``error:`` line, exit code 2
and that nothing was created.
"""

from __future__ import annotations

import json

import pytest
from helpers import assert_clean_error, run_cli

from erase.cli import erase_class, erase_concept, sample_grid
from erase.errors import EraseError
from erase.validate import read_text_file, validate_args

BINARY = bytes(range(256)) * 4  # has NUL bytes, as images, archives and weights do
LATIN1 = "une cathédrale gothique\n".encode("latin-1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("validate")
    (d / "binary.txt").write_bytes(BINARY)
    (d / "latin1.txt").write_bytes(LATIN1)
    (d / "prompts.txt").write_text("a handwritten digit one\n")
    (d / "a_file").write_text("not a folder\n")
    (d / "folder").mkdir()
    return d


def _path(files, name):
    return str(files / name) if name is not None else None


# (flag, bad value, words the error must contain); a value "@name" is a path in `files`
COMMON = [
    ("--max_train_steps", "0", ">= 1"),
    ("--max_train_steps", "-3", ">= 1"),
    ("--train_batch_size", "0", ">= 1"),
    ("--gradient_accumulation_steps", "0", ">= 1"),
    ("--learning_rate", "nan", "> 0"),
    ("--learning_rate", "inf", "> 0"),
    ("--learning_rate", "-1e-4", "> 0"),
    ("--learning_rate", "0", "> 0"),
    ("--inner_lr", "nan", "> 0"),
    ("--inner_lr", "-1", "> 0"),
    ("--inner_steps", "0", ">= 1"),
    ("--retain_weight", "-1", ">= 0"),
    ("--retain_weight", "inf", ">= 0"),
    ("--adam_weight_decay", "-0.1", ">= 0"),
    ("--max_grad_norm", "0", "> 0"),
    ("--max_grad_norm", "nan", "> 0"),
    ("--saliency_sparsity", "1", "[0, 1)"),
    ("--saliency_sparsity", "-0.1", "[0, 1)"),
    ("--esd_eta", "-1", ">= 0"),
    ("--esd_eta", "nan", ">= 0"),
    ("--ga_bound", "0", "> 0"),
    ("--seed", "-1", ">= 0"),
    ("--lr_warmup_steps", "-1", ">= 0"),
    ("--checkpointing_steps", "-2", ">= 0"),
    ("--checkpoints_total_limit", "0", ">= 1"),
    ("--monitor_every", "-1", ">= 0"),
    ("--stop_confirm", "-1", ">= 0"),
    ("--output_dir", "@a_file", "not writable"),
    ("--output_dir", "@a_file/run", "not writable"),
]
CONCEPT = COMMON + [
    ("--retain_prompts", "@binary.txt", "binary file"),
    ("--forget_prompts", "@binary.txt", "binary file"),
    ("--retain_prompts", "@latin1.txt", "not UTF-8"),
    ("--retain_prompts", "@folder", "not a file"),
    ("--retain_prompts", "@missing.txt", "does not exist"),
    ("--forget_images", "@missing", "does not exist"),
    ("--forget_images", "@a_file", "not a folder"),
    ("--images_per_prompt", "0", ">= 1"),
    ("--retain_images_per_prompt", "-1", ">= 1"),
    ("--gen_steps", "0", ">= 1"),
    ("--gen_batch_size", "0", ">= 1"),
    ("--gen_guidance_scale", "nan", ">= 0"),
    ("--eval_images_per_class", "0", ">= 1"),
    ("--lora_rank", "0", ">= 1"),
    ("--resolution", "0", ">= 1"),
    ("--validation_steps", "-1", ">= 0"),
    ("--cache_dir", "@a_file", "not writable"),
]
CLASS = COMMON + [
    ("--pretrained_model", "@missing", "not a folder"),
    ("--pretrained_model", "@a_file", "not a folder"),
    ("--train_data", "@missing", "not a folder"),
    ("--forget_class", "-1", ">= 0"),
    ("--null_class", "-1", ">= 0"),
    ("--retain_null_prob", "1", "[0, 1)"),
    ("--retain_null_prob", "nan", "[0, 1)"),
    ("--guidance_scale", "-2", ">= 0"),
    ("--guidance_scale", "inf", ">= 0"),
    ("--num_inference_steps", "0", ">= 1"),
    ("--eval_samples_per_class", "0", ">= 1"),
]
GRID = [
    ("--prompts", "@binary.txt", "binary file"),
    ("--prompts", "@missing.csv", "does not exist"),
    ("--seeds", "-1", ">= 0"),
    ("--classes", "-3", ">= 0"),
    ("--batch_size", "0", ">= 1"),
    ("--num_inference_steps", "0", ">= 1"),
    ("--guidance_scale", "nan", ">= 0"),
    ("--output", "@folder", "is a folder"),
    ("--output", "@a_file/grid.png", "not writable"),
    ("--images_dir", "@a_file", "not writable"),
]
BASE = {
    "concept": (erase_concept, ["--concept", "three", "--output_dir", "{out}"]),
    "class": (erase_class, ["--forget_class", "7", "--output_dir", "{out}"]),
    "grid": (sample_grid, ["--output", "{out}/grid.png"]),
}
CASES = [("concept", *c) for c in CONCEPT] + [("class", *c) for c in CLASS]
CASES += [("grid", *c) for c in GRID]


def _argv(script, flag, value, files):
    module, base = BASE[script]
    if value.startswith("@"):
        value = str(files / value[1:])
    argv = [a.replace("{out}", str(files / "out")) for a in base]
    if flag in argv:  # replace the base value (--output_dir, --output)
        i = argv.index(flag)
        del argv[i : i + 2]
    return module, argv + [f"{flag}={value}"]  # "=": argparse reads "-1e-4" as a flag


@pytest.mark.parametrize(
    "script,flag,value,words", CASES, ids=[f"{c[0]}{c[1]}={c[2]}" for c in CASES]
)
def test_bad_flag_is_refused_before_any_work(files, script, flag, value, words):
    module, argv = _argv(script, flag, value, files)
    args = module.parse_args(argv)
    with pytest.raises(EraseError) as info:
        validate_args(args)
    msg = str(info.value)
    assert "\n" not in msg and flag in msg and words in msg, msg
    assert not (files / "out").exists()


@pytest.mark.parametrize("script", list(BASE))
def test_defaults_and_good_values_pass(files, script):
    module, argv = _argv(script, "--seed" if script != "grid" else "--seeds", "3", files)
    validate_args(module.parse_args(argv))
    if script == "concept":
        good = argv + ["--retain_prompts", str(files / "prompts.txt"), "--saliency_sparsity", "0"]
        validate_args(module.parse_args(good + ["--cache_dir", str(files / "new" / "cache")]))
    if script == "grid":
        validate_args(module.parse_args(argv + ["--prompts", str(files / "prompts.txt")]))
        validate_args(module.parse_args(argv + ["--prompts", "a cat|a dog", "free text"]))


def test_every_number_flag_of_the_jobs_has_a_rule(monkeypatch):
    """A new number flag gets a rule in erase.validate.NUMBER_RULES (NaN alone is too little)."""
    import argparse

    from erase.validate import NUMBER_RULES

    parsers = []
    original = argparse.ArgumentParser.parse_args

    def keep(self, *a, **kw):
        parsers.append(self)
        return original(self, *a, **kw)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", keep)
    for module, base in BASE.values():
        module.parse_args([a.replace("{out}", "x") for a in base])
        numbers = {a.dest for a in parsers[-1]._actions if a.type in (int, float)}
        missing = sorted(numbers - set(NUMBER_RULES))
        assert not missing, f"{module.__name__}: number flags without a rule: {missing}"


def test_read_text_file(files):
    assert read_text_file(files / "prompts.txt", "f") == "a handwritten digit one\n"
    bom = files / "bom.txt"
    bom.write_bytes("\ufeffa red car\n".encode())
    assert read_text_file(bom, "f") == "a red car\n"
    for name, words in [
        ("binary.txt", "binary"),
        ("latin1.txt", "UTF-8"),
        ("folder", "not a file"),
        ("missing", "does not exist"),
    ]:
        with pytest.raises(EraseError, match=words):
            read_text_file(files / name, "--x")


def test_prompt_readers_refuse_binary_files(files):
    from erase.concepts import parse_concept_file, read_prompt_file
    from erase.data.prompts_csv import load_prompt_csv, load_prompts

    binary = files / "binary.txt"
    for read in (
        lambda: read_prompt_file(binary, "--retain_prompts"),
        lambda: parse_concept_file(binary),
        lambda: load_prompts(str(binary)),
    ):
        with pytest.raises(EraseError, match="binary file"):
            read()
    csv = files / "binary.csv"
    csv.write_bytes(BINARY)
    with pytest.raises(EraseError, match="binary file"):
        load_prompt_csv(csv)


def test_sample_grid_prompts_take_a_list(tmp_path):
    """``--prompts A B`` (a list, as every other list flag) and the older ``"A|B"``."""
    args = sample_grid.parse_args(["--prompts", "a handwritten digit one", "a digit two"])
    assert args.prompts == ["a handwritten digit one", "a digit two"]
    out = tmp_path / "grid.png"
    prompts = ["a handwritten digit one", "a handwritten digit two in thick style"]
    common = ["--seeds", "0", "--num_inference_steps", "1"]
    sample_grid.run(sample_grid.parse_args(["--prompts", *prompts, "--output", str(out), *common]))
    manifest = json.loads((tmp_path / "grid_images" / "manifest.json").read_text())
    assert [e["prompt"] for e in manifest["images"]] == prompts
    old = tmp_path / "old.png"
    sample_grid.run(
        sample_grid.parse_args(["--prompts", "|".join(prompts), "--output", str(old), *common])
    )
    manifest = json.loads((tmp_path / "old_images" / "manifest.json").read_text())
    assert [e["prompt"] for e in manifest["images"]] == prompts


def test_eval_prompts_take_a_list():
    import importlib.util

    from helpers import REPO

    for name in ("clipscore", "fid"):
        spec = importlib.util.spec_from_file_location(f"eval_{name}", REPO / "eval" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.parse_args(["--prompts", "a", "b"]).prompts == ["a", "b"]
        assert mod.parse_args(["--prompts", "a|b"]).prompts == "a|b"  # the older form
        assert mod.parse_args([]).prompts is None


@pytest.mark.parametrize(
    "script,args,words",
    [
        ("scripts/erase_concept.py", ["--retain_prompts", "@binary.txt"], "binary file"),
        ("scripts/erase_class.py", ["--learning_rate", "nan"], "--learning_rate"),
    ],
    ids=["concept-binary-retain-prompts", "class-nan-learning-rate"],
)
def test_launched_script_gives_one_error_line(files, env, script, args, words):
    out = files / "launched"
    args = [str(files / a[1:]) if a.startswith("@") else a for a in args]
    base = ["--concept", "three"] if "concept" in script else ["--forget_class", "7"]
    res = run_cli(script, [*base, "--output_dir", out, *args], env, timeout=120)
    assert res.rc == 2, res.tail()
    assert_clean_error(res, words)
    assert not out.exists()  # refused before the job made anything


EVAL = [
    ("clipscore", "--captions", "@binary.txt", "binary file"),
    ("clipscore", "--images", "@missing", "not a folder"),
    ("clipscore", "--limit", "0", ">= 1"),
    ("clipscore", "--seeds", "-1", ">= 0"),
    ("clipscore", "--batch_size", "0", ">= 1"),
    ("clipscore", "--prompts", "@binary.txt", "binary file"),
    ("clipscore", "--output_dir", "@a_file", "not writable"),
    ("fid", "--real", "@a_file", "not a folder"),
    ("fid", "--samples_per_class", "0", ">= 1"),
    ("fid", "--guidance_scale", "nan", ">= 0"),
    ("nudity", "--threshold", "1.5", "[0, 1]"),
    ("nudity", "--num_images_per_prompt", "0", ">= 1"),
    ("nudity", "--images", "@missing", "not a folder"),
    ("unlearncanvas", "--styles", "@binary.txt", "binary file"),
    ("unlearncanvas", "--seeds", "-5", ">= 0"),
]


@pytest.mark.parametrize("name,flag,value,words", EVAL, ids=[f"{e[0]}{e[1]}" for e in EVAL])
def test_eval_bad_flag_is_refused(files, name, flag, value, words):
    import importlib.util

    from helpers import REPO

    spec = importlib.util.spec_from_file_location(f"eval_{name}", REPO / "eval" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if value.startswith("@"):
        value = str(files / value[1:])
    args = mod.parse_args(["--output_dir", str(files / "out"), f"{flag}={value}"])
    with pytest.raises(EraseError) as info:
        validate_args(args)
    assert flag in str(info.value) and words in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "blocks,bad,allowed", [(4, 500, "multiples of 8"), (2, 15, "multiples of 2")]
)
def test_resolution_the_vae_cannot_take_fails_before_any_weights_load(
    tmp_path, blocks, bad, allowed
):
    """The VAE's factor comes from its config (2**(len(block_out_channels)-1)); the folder holds
    no weights at all, so reaching the loader would be a different error."""
    model = tmp_path / "model"
    (model / "vae").mkdir(parents=True)
    (model / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    config = {"_class_name": "AutoencoderKL", "block_out_channels": [32] * blocks}
    (model / "vae" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    args = erase_concept.parse_args(
        ["--pretrained_model_name_or_path", str(model), "--concept", "three",
         "--resolution", str(bad), "--output_dir", str(out)]
    )  # fmt: skip
    with pytest.raises(EraseError, match=f"--resolution {bad} .*{allowed}"):
        erase_concept.run(args)
    assert not out.exists()
