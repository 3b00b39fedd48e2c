"""The models users bring, on tiny pipelines built from configs: SDXL (two text encoders,
pooled embeddings, size conditioning) and SD 2.x-shaped v-prediction, through the same
``erase_concept`` job as SD 1.x — every method, every trainable set, every save format — and
losses taken in the model's own prediction space."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import assert_ok, cli_env, run_cli  # noqa: E402
from tiny_pipelines import build_tiny_sd_v, build_tiny_sdxl  # noqa: E402

from erase.steplog import forget_loss  # noqa: E402

FAST = [
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
    "--monitor_every",
    "1",
    "--no_eval",
    "--validation_prompts",
    "a red sports car",
]


@pytest.fixture(scope="module")
def family_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {"sdxl": build_tiny_sdxl(root / "sdxl"), "sd_v": build_tiny_sd_v(root / "sd_v")}


def _erase(model: Path, out: Path, *extra: str) -> Path:
    """One erasure through the job's own entry point, in-process (saves a launch)."""
    from erase.cli import erase_concept

    erase_concept.main(
        [
            "--pretrained_model_name_or_path",
            str(model),
            "--concept",
            "a red sports car",
            "--output_dir",
            str(out),
            *FAST,
            *extra,
        ]
    )
    return out


def _unet_state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


# method, trainable set, save format: every method, every set and every format is covered
SDXL_RUNS = [
    ("lur", "noxattn", "pipeline"),
    ("joint", "xattn", "unet"),
    ("esd", "xattn-kv", "pipeline"),
    ("salun", "full", "pipeline"),
    ("ga", "lora", "lora"),
    ("pcgrad", "lora", "pipeline"),
]


@pytest.mark.parametrize("method,params,fmt", SDXL_RUNS)
def test_sdxl_erasure_with_every_method_set_and_format(
    family_models, tmp_path, method, params, fmt
):
    """The folder is read as an SDXL pipeline, the UNet gets its added conditioning, the chosen
    weights (and only those) move, and the output loads as the user would load it."""
    from diffusers import DiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    base = family_models["sdxl"]
    # a random UNet's denoising MSE is above ga's default bound of 1 (no gradient there)
    bound = ["--ga_bound", "1000"] if method == "ga" else []
    out = _erase(
        base,
        tmp_path / "out",
        "--method",
        method,
        "--train_params",
        params,
        "--save_format",
        fmt,
        *bound,
    )
    config = json.loads((out / "erase_config.json").read_text())
    assert config["pipeline_class"] == "StableDiffusionXLPipeline"
    assert config["resolution"] == 16  # sample_size 8 × VAE factor 2
    log = json.loads((out / "step_log.json").read_text())
    steps = log["steps"] if isinstance(log, dict) else log
    assert len(steps) == 2
    assert all(torch.isfinite(torch.tensor(forget_loss(s))) for s in steps)
    assert "StableDiffusionXLPipeline" in (out / "README.md").read_text()
    before = _unet_state(base)
    if fmt == "pipeline":
        pipe = DiffusionPipeline.from_pretrained(out)
        assert isinstance(pipe, StableDiffusionXLPipeline)
        changed = _changed(before, _unet_state(out))
    elif fmt == "unet":
        unet = UNet2DConditionModel.from_pretrained(out / "unet")
        pipe = StableDiffusionXLPipeline.from_pretrained(base, unet=unet)
        changed = _changed(before, _unet_state(out))
    else:
        pipe = StableDiffusionXLPipeline.from_pretrained(base)
        pipe.load_lora_weights(out)
        pipe.fuse_lora()
        pipe.unload_lora_weights()
        after = {k: v.detach() for k, v in pipe.unet.state_dict().items()}
        changed = _changed(before, after)
    assert changed, "the erasure changed no UNet weight"
    if params == "xattn":
        assert all("attn2" in k for k in changed)
    if params == "xattn-kv":
        assert all("attn2.to_k" in k or "attn2.to_v" in k for k in changed)
    if params == "noxattn":
        assert not any("attn2" in k or k.startswith("add_embedding") for k in changed)
    image = pipe(
        "a red sports car",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert image.shape == (1, 16, 16, 3) and torch.isfinite(torch.from_numpy(image)).all()


def test_sdxl_through_accelerate_launch_with_a_resolution_override(family_models, tmp_path):
    """The command a user runs (it used to die in ``get_aug_embed``): the size conditioning
    and the generated latents follow ``--resolution``."""
    from safetensors.torch import load_file

    out = tmp_path / "out"
    res = run_cli(
        "scripts/erase_concept.py",
        [
            "--pretrained_model_name_or_path",
            family_models["sdxl"],
            "--output_dir",
            out,
            "--concept",
            "a red sports car",
            "--resolution",
            "32",
            *FAST,
        ],
        cli_env(),
        launcher="accelerate",
    )
    assert_ok(res)
    assert json.loads((out / "erase_config.json").read_text())["resolution"] == 32
    caches = list((out / "cache").glob("latents-*.safetensors"))
    assert caches and all(load_file(str(c))["latents"].shape[-1] == 16 for c in caches)


def test_sdxl_conditions_carry_pooled_embeddings_and_size_ids(family_models):
    """Conditions batch and slice like tensors; the null condition is the zeros SDXL's
    guidance uses for an empty prompt (force_zeros_for_empty_prompt)."""
    from diffusers import StableDiffusionXLPipeline

    from erase.concept_data import embed_prompts, null_condition
    from erase.families import TextCond, cat_conds

    pipe = StableDiffusionXLPipeline.from_pretrained(family_models["sdxl"])
    cond = embed_prompts(pipe, ["a car", "a red sports car", "a cat"], "cpu", resolution=24)
    assert isinstance(cond, TextCond)
    assert cond.embeds.shape == (3, 16, 64) and cond.pooled.shape == (3, 32)
    assert cond.time_ids.tolist() == [[24, 24, 0, 0, 24, 24]] * 3
    null = null_condition(pipe, "cpu", 24)
    assert pipe.config.force_zeros_for_empty_prompt
    assert not null.embeds.any() and not null.pooled.any()
    both = cat_conds([cond[1:], null.expand(2)])
    assert both.embeds.shape[0] == 4 and torch.equal(both[:2].pooled, cond.pooled[1:])
    # the UNet accepts them: its output for the condition differs from the null one
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500])
    with torch.no_grad():
        a = pipe.unet(x, t, **cond[:1].unet_kwargs()).sample
        b = pipe.unet(x, t, **null[:1].unet_kwargs()).sample
    assert not torch.equal(a, b)


def test_v_prediction_denoise_loss_is_the_v_mse(family_models):
    """At the original weights the ``denoise`` loss equals the v-MSE computed by hand
    (v = √ᾱ ε − √(1−ᾱ) x₀) and is not the ε-MSE the code used to compute."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    from erase.losses import noisy_batch, retain_loss
    from erase.tasks.concept_erasure import predict_text

    pipe = StableDiffusionPipeline.from_pretrained(family_models["sd_v"], safety_checker=None)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    assert sched.config.prediction_type == "v_prediction"
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 4, 12, 12, generator=g)
    cond, _ = pipe.encode_prompt(["a car"] * 4, "cpu", 1, False)
    batch = noisy_batch(sched, x0, cond, g)
    with torch.no_grad():
        loss = retain_loss("denoise", predict_text, batch)(pipe.unet).item()
        out = pipe.unet(batch.x_t, batch.t, encoder_hidden_states=cond).sample
    abar = sched.alphas_cumprod[batch.t].view(-1, 1, 1, 1)
    v = abar.sqrt() * batch.noise - (1 - abar).sqrt() * x0
    by_hand = ((out - v) ** 2).mean().item()
    eps_mse = ((out - batch.noise) ** 2).mean().item()
    # the same float32 ops in another order: a few ulps of relative error in each term
    assert loss == pytest.approx(by_hand, rel=1e-5)
    assert abs(loss - eps_mse) > 0.01 * eps_mse
    # and the x₀-prediction ("sample") target is x₀ itself
    x0_sched = DDPMScheduler.from_config({**sched.config, "prediction_type": "sample"})
    assert torch.equal(noisy_batch(x0_sched, x0, cond, torch.Generator().manual_seed(1)).target, x0)


@pytest.mark.parametrize(
    "method,extra",
    [("lur", ["--retain_loss", "denoise"]), ("ga", ["--ga_bound", "1000"]), ("salun", [])],
)
def test_v_prediction_pipeline_erases_at_its_native_resolution(
    family_models, tmp_path, method, extra
):
    out = _erase(family_models["sd_v"], tmp_path / "out", "--method", method, *extra)
    config = json.loads((out / "erase_config.json").read_text())
    assert config["prediction_type"] == "v_prediction"
    assert config["resolution"] == 24  # sample_size 12 × VAE factor 2, not the 16 of SD 1.x here
    assert _changed(_unet_state(family_models["sd_v"]), _unet_state(out))


def test_unsupported_pipeline_family_is_one_clear_error(tmp_path, capsys):
    from erase.cli import erase_concept

    folder = tmp_path / "flux"
    folder.mkdir()
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "FluxPipeline", "transformer": ["diffusers", "X"]})
    )
    with pytest.raises(SystemExit) as exc:
        erase_concept.main(
            [
                "--pretrained_model_name_or_path",
                str(folder),
                "--concept",
                "car",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert (
        len(lines) == 1 and "FluxPipeline" in lines[0] and "StableDiffusionXLPipeline" in lines[0]
    )
    assert "Traceback" not in err


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_class_task_regresses_in_the_models_prediction_space(prediction):
    """Class erasure too: the ``denoise`` retain loss and gradient ascent's loss are the MSE
    against ε, v or x₀ as the scheduler's ``prediction_type`` says."""
    from conftest import _tiny_class_unet
    from diffusers import DDPMScheduler

    from erase.data.class_data import fit_to_model, load_class_data
    from erase.params import FrozenModel
    from erase.tasks.class_erasure import ClassErasureTask

    torch.manual_seed(0)
    unet = _tiny_class_unet()
    sched = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction)
    data = fit_to_model(load_class_data(None), 1, 8)
    task = ClassErasureTask(
        FrozenModel(_tiny_class_unet()), sched, data, [3], 10, "ga", "denoise", 16, "cpu",
        ga_bound=1e6, retain_null_prob=0.0,
    )  # fmt: skip
    outputs = []

    def recording(x_t, t, class_labels):
        out = unet(x_t, t, class_labels=class_labels)
        outputs.append(out.sample)
        return out

    forget, retain = task.closures(torch.Generator().manual_seed(0))
    with torch.no_grad():
        ga = forget(recording).item()
        assert retain(recording).item() > 0
    # the task's draws are a pure function of the generator: rebuild the forget batch by hand
    from erase.losses import noisy_batch

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(task.forget_x), (16,), generator=g)
    torch.randint(len(task.anchor_classes), (16,), generator=g)  # the anchors' draw
    x0 = task.forget_x[idx]
    batch = noisy_batch(sched, x0, task.forget_y[idx], g)
    abar = sched.alphas_cumprod[batch.t].view(-1, 1, 1, 1)
    want = {
        "epsilon": batch.noise,
        "v_prediction": abar.sqrt() * batch.noise - (1 - abar).sqrt() * x0,
        "sample": x0,
    }[prediction]
    out = outputs[0]
    # the same float32 ops in another order: a few ulps of relative error per element
    assert -ga == pytest.approx(((out - want) ** 2).mean().item(), rel=1e-5)
    if prediction != "epsilon":
        assert abs(-ga - ((out - batch.noise) ** 2).mean().item()) > 0.01 * -ga


def test_real_unet_configs_have_the_published_sizes():
    """The configs the GPU benchmark builds are the real models' (parameter counts of SD 1.5,
    SD 2.1 and SDXL base), checked on the meta device: no memory, no download."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    for name, millions in (("sd15", 859.52), ("sd21v", 865.91), ("sdxl", 2567.46)):
        cfg = json.loads((bench / f"{name}_unet_config.json").read_text())
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(cfg)
        assert sum(p.numel() for p in unet.parameters()) / 1e6 == pytest.approx(millions, abs=0.01)


def test_family_memory_benchmark_runs_every_family_in_smoke_size(tmp_path):
    """The GPU memory benchmark's code path (real trainer step, SDXL conditioning, v targets)
    on shrunk configs on the CPU."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import family_memory

    out = tmp_path / "fm.json"
    # SDXL's conditioning and SD 2.1's v targets; SD 1.5's path is the embedded world's, and
    # LoRA's frozen original is covered by the SDXL erasure tests above
    argv = ["--smoke", "--steps", "1", "--families", "sdxl", "sd21v", "--train_params", "noxattn"]
    result = family_memory.main([*argv, "--output", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert rows == result["rows"] and len(rows) == 2 * 2
    assert {r["family"] for r in rows} == {"sd21v", "sdxl"}
    assert all(r["loss_forget"] > 0 and r["step_seconds"] > 0 for r in rows)
    assert all("time_vs_joint" in r for r in rows if r["method"] == "lur")


def test_prompt_attack_on_sdxl_is_one_clear_error(family_models, tmp_path, capsys):
    """The token-level attacks handle one text encoder; an SDXL model gets a line, not a
    traceback from inside its second encoder."""
    from erase.cli import attack

    with pytest.raises(SystemExit) as exc:
        attack.main([str(family_models["sdxl"]), "--concept", "a red sports car", "--attack",
                     "soft_prompt", "--output_dir", str(tmp_path / "a")])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "StableDiffusionXLPipeline" in lines[0], err[-2000:]
