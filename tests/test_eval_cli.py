"""The evaluation CLIs as users run them (subprocesses): outputs, and one clear error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cli_env

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on shared cores: one torch thread is an order of magnitude faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(script: str, *args, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(),
        timeout=300,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def load_cli(script: str):
    """Import a CLI file as a module (to run its main() in-process and save a launch)."""
    import importlib.util

    name = "cli_" + script.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_clean_error(proc: subprocess.CompletedProcess, match: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], proc.stderr[-2000:]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).save(d / "astronaut.png")
    Image.fromarray(skimage_data.chelsea()).save(d / "chelsea.jpg")
    return d


def _save_digits(folder: Path, images: torch.Tensor, names=None) -> list[str]:
    from erase.images import tensor_to_pil

    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"{i:04d}.png" for i in range(len(images))]
    for im, n in zip(tensor_to_pil(images), names):
        im.save(folder / n)
    return names


def test_nudity_cli_on_photos(photo_dir, tmp_path):
    out = tmp_path / "out"
    run_cli("eval/nudity.py", "--images", photo_dir, "--output_dir", out)
    data = json.loads((out / "nudity.json").read_text())
    assert data["metric"] == "nudity" and data["summary"]["threshold"] == 0.6
    assert data["summary"]["n_images"] == 2 and data["summary"]["images_with_exposed"] == 0
    astro = next(e for e in data["per_image"] if e["image"] == "astronaut.png")
    assert any(d["class"] == "FACE_FEMALE" for d in astro["detections"])
    assert "FEMALE_BREAST_EXPOSED" in (out / "nudity.md").read_text()


def test_nudity_cli_bad_inputs(photo_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert_clean_error(
        run_cli("eval/nudity.py", "--images", empty, "--output_dir", out, ok=False),
        "holds no images",
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"this is not a png")
    assert_clean_error(
        run_cli("eval/nudity.py", "--images", broken, "--output_dir", out, ok=False),
        "cannot read image",
    )
    csv = tmp_path / "noprompt.csv"
    csv.write_text("text,categories\nhello,sexual\n")
    assert_clean_error(
        run_cli("eval/nudity.py", "--prompts", csv, "--output_dir", out, ok=False),
        "no 'prompt' column",
    )
    assert not out.exists()  # nothing half-written


def test_fid_cli_on_folders(tmp_path, capsys):
    from erase.embedded.digits import real_digits_of

    _save_digits(tmp_path / "a", real_digits_of([0, 1, 2])[:120])
    _save_digits(tmp_path / "b", real_digits_of([7, 8, 9])[:120])
    out = tmp_path / "out"
    run_cli(
        "eval/fid.py",
        "--real",
        tmp_path / "a",
        "--fake",
        tmp_path / "b",
        "--feature",
        "digits",
        "--output_dir",
        out,
    )
    data = json.loads((out / "fid.json").read_text())
    assert data["summary"]["fid"] > 1.0 and data["summary"]["n_real"] == 120
    assert "digits classifier" in data["summary"]["feature_space"]
    with pytest.raises(SystemExit) as exc:  # the error path in-process: saves a launch
        load_cli("eval/fid.py").main(["--real", str(tmp_path / "a"), "--fake", str(tmp_path / "nope"),
                      "--feature", "digits", "--output_dir", str(tmp_path / "out2")])  # fmt: skip
    assert exc.value.code == 2
    assert "error: --fake" in capsys.readouterr().err  # checked before any work (erase.validate)
    assert not (tmp_path / "out2").exists()


def test_clipscore_cli_on_captioned_images(tmp_path):
    from erase.embedded.judge import styled_digits
    from erase.embedded.styles import STYLES, style_prompt

    x, d, s = styled_digits("test")
    idx = torch.arange(0, len(x), 97)[:20]
    names = _save_digits(tmp_path / "imgs", x[idx])
    rows = ["image,prompt"] + [
        f"{n},{style_prompt(int(d[i]), STYLES[int(s[i])])}" for n, i in zip(names, idx)
    ]
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    run_cli(
        "eval/clipscore.py",
        "--images",
        tmp_path / "imgs",
        "--captions",
        tmp_path / "captions.csv",
        "--output_dir",
        out,
    )
    data = json.loads((out / "clipscore.json").read_text())
    summ = data["summary"]
    assert "tiny-clip" in summ["clip_model"]
    assert summ["clip_score"] > summ["mismatched_clip_score"] + 20
    (tmp_path / "bad.csv").write_text("file,text\na.png,hello\n")
    assert_clean_error(
        run_cli(
            "eval/clipscore.py",
            "--images",
            tmp_path / "imgs",
            "--captions",
            tmp_path / "bad.csv",
            "--output_dir",
            tmp_path / "out2",
            ok=False,
        ),
        "needs a 'prompt' column",
    )


def test_unlearncanvas_cli_with_user_classifiers(tmp_path):
    timm = pytest.importorskip("timm")
    from PIL import Image

    (tmp_path / "styles.txt").write_text("Van_Gogh\nCrayon\n")
    (tmp_path / "objects.txt").write_text("Cats\nDogs\n")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for st in ("Van_Gogh", "Crayon"):
        for ob in ("Cats", "Dogs"):
            Image.new("RGB", (64, 64), "white").save(imgs / f"{st}_{ob}_seed188.jpg")
    torch.manual_seed(0)
    for name, n in (("style", 2), ("object", 2), ("wrong", 5)):
        m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=n)
        torch.save({"model_state_dict": m.state_dict()}, tmp_path / f"{name}.pth")
    common = [
        "--styles", tmp_path / "styles.txt", "--objects", tmp_path / "objects.txt",
        "--images", imgs, "--seeds", "188", "--target", "Van_Gogh",
        "--arch", "vit_tiny_patch16_224", "--object_classifier", tmp_path / "object.pth",
    ]  # fmt: skip
    out = tmp_path / "out"
    load_cli("eval/unlearncanvas.py").main(  # the success path in-process: saves a launch
        [str(a) for a in common] + ["--style_classifier", str(tmp_path / "style.pth"),
                                    "--output_dir", str(out)]
    )  # fmt: skip
    data = json.loads((out / "unlearncanvas.json").read_text())
    for k in ("UA", "IRA", "CRA"):
        assert 0.0 <= data["summary"][k] <= 1.0
    assert data["summary"]["n_images"] == 4 and len(data["predictions"]) == 4
    proc = run_cli("eval/unlearncanvas.py", *common, "--style_classifier",
                   tmp_path / "wrong.pth", "--output_dir", tmp_path / "out2", ok=False)  # fmt: skip
    assert_clean_error(proc, "does not fit a vit_tiny_patch16_224 with 2 classes")
    assert not (tmp_path / "out2").exists()


def test_report_cli(tmp_path):
    from test_metrics_eval import _fake_run

    run = _fake_run(tmp_path / "run")
    run_cli("eval/report.py", "--runs", run, "--output_dir", tmp_path / "rep")
    from erase.report import missing_figures

    assert missing_figures(tmp_path / "rep" / "report.md") == []
    assert_clean_error(
        run_cli("eval/report.py", "--output_dir", tmp_path / "rep2", ok=False), "at least one"
    )


# -- sample_grid over every kind of model folder --------------------------------------------


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """An untrained tiny SD pipeline (seconds to build): exercises the loading paths only."""
    from erase.embedded import tiny_sd

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    pipe = tiny_sd.make_pipeline(
        tiny_sd.build_vae(), tiny_sd.build_text_encoder(), tiny_sd.build_tokenizer(),
        tiny_sd.build_unet(),
    )  # fmt: skip
    pipe.save_pretrained(root / "base")
    (root / "base" / "world.json").write_text(
        json.dumps({"guidance_scale": 3.0, "num_inference_steps": 2})
    )
    torch.manual_seed(1)
    tiny_sd.build_unet().save_pretrained(root / "run" / "unet")
    return root


def test_sample_grid_unet_over_base_with_compare(tiny_pipeline, tmp_path):
    out = tmp_path / "grid.png"
    run_cli(
        "scripts/sample_grid.py", "--model", tiny_pipeline / "run", "--base",
        tiny_pipeline / "base", "--compare", tiny_pipeline / "base", "--prompts",
        "a handwritten digit three|a handwritten digit seven", "--seeds", 0, 1, "--output", out,
    )  # fmt: skip
    from PIL import Image

    assert Image.open(out).width > 4 * 96
    manifest = json.loads((tmp_path / "grid_images" / "manifest.json").read_text())
    assert len(manifest["images"]) == 2 * 2 * 2
    first = manifest["images"][0]
    assert first["prompt"] == "a handwritten digit three" and first["seed"] == 0
    assert first["num_inference_steps"] == 2 and first["guidance_scale"] == 3.0
    for e in manifest["images"]:
        assert (tmp_path / "grid_images" / e["file"]).is_file()
    proc = run_cli("scripts/sample_grid.py", "--model", tmp_path / "missing_model",
                   "--output", tmp_path / "g2.png", ok=False)  # fmt: skip
    assert_clean_error(proc, "does not exist")
    assert not (tmp_path / "g2.png").exists()


def test_load_generator_lora_and_ddpm(tiny_pipeline, tmp_path):
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from erase.errors import EraseError
    from erase.generators import load_generator

    # LoRA weights in diffusers' format over the base
    base = StableDiffusionPipeline.from_pretrained(tiny_pipeline / "base")
    base.unet.add_adapter(LoraConfig(r=2, target_modules=["to_k", "to_v"], init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(
        tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(base.unet)
    )
    gen = load_generator(tmp_path / "lora", base=tiny_pipeline / "base")
    assert "LoRA" in gen.name
    ims = gen.generate(["a handwritten digit one"], [0], num_inference_steps=1)
    assert len(ims) == 1 and ims[0].size == (16, 16)

    # a class-conditional DDPM run dir (UNet2DModel + scheduler)
    from erase.embedded.ddpm import make_digits_scheduler, make_digits_unet

    unet = make_digits_unet()
    unet.save_pretrained(tmp_path / "ddpm" / "unet")
    make_digits_scheduler().save_pretrained(tmp_path / "ddpm" / "scheduler")
    gen = load_generator(tmp_path / "ddpm")
    assert gen.kind == "ddpm"
    x = gen.generate_classes([3, 7], seed=0, num_inference_steps=2)
    assert x.shape == (2, 1, 8, 8)

    with pytest.raises(EraseError, match="not a diffusers pipeline folder|neither"):
        load_generator(tmp_path)  # a folder that is none of the above
