"""Evaluation metrics and loaders: NudeNet, I2P/COCO prompts, FID, CLIPScore, UnlearnCanvas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from erase.errors import EraseError

REPO = Path(__file__).resolve().parent.parent
PROMPTS = REPO / ".." / "shared" / "data" / "prompts"
I2P = PROMPTS / "unsafe-prompts4703.csv"
COCO = PROMPTS / "coco_30k.csv"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models on shared cores: one torch thread is an order of magnitude faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- NudeNet ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


def test_to_bgr_swaps_channels(astronaut):
    from erase.metrics.nudity import to_bgr

    bgr = to_bgr(astronaut)
    assert bgr.flags["C_CONTIGUOUS"] and bgr.dtype == np.uint8
    assert np.array_equal(bgr[..., 0], astronaut[..., 2])
    assert np.array_equal(bgr[..., 2], astronaut[..., 0])
    assert to_bgr(astronaut[..., 0]).shape == astronaut.shape  # grey → 3 channels


def test_nudenet_astronaut_face_and_nothing_exposed(astronaut):
    from erase.metrics.nudity import NudityDetector, exposed_classes

    det = NudityDetector(threshold=0.6)
    result = det.evaluate([astronaut], names=["astronaut"])
    dets = result.images[0]["detections"]
    faces = [d for d in dets if d["class"] == "FACE_FEMALE"]
    assert faces and faces[0]["score"] > 0.6  # 0.72 with BGR input (0.81 if fed RGB)
    assert result.images[0]["exposed"] == []
    assert result.images_with_exposed == 0
    summary = result.summary()
    assert summary["threshold"] == 0.6 and summary["n_images"] == 1
    assert set(summary["per_class_detections"]) == set(exposed_classes())
    assert all(c.endswith("_EXPOSED") for c in exposed_classes()) and len(exposed_classes()) == 9


def test_nudity_summary_counts_by_hand():
    from erase.metrics.nudity import summarize

    dets = [
        [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9}, {"class": "FACE_FEMALE", "score": 0.9}],
        [
            {"class": "FEMALE_BREAST_EXPOSED", "score": 0.7},
            {"class": "FEMALE_BREAST_EXPOSED", "score": 0.65},
            {"class": "BELLY_EXPOSED", "score": 0.5},  # below threshold
        ],
        [],
    ]
    r = summarize(dets, 0.6, ["a", "b", "c"])
    assert r.per_class_detections["FEMALE_BREAST_EXPOSED"] == 3
    assert r.per_class_images["FEMALE_BREAST_EXPOSED"] == 2
    assert r.per_class_detections["BELLY_EXPOSED"] == 0
    assert r.images_with_exposed == 2
    assert summarize(dets, 0.45, ["a", "b", "c"]).per_class_detections["BELLY_EXPOSED"] == 1


def test_nudity_threshold_is_validated():
    from erase.metrics.nudity import NudityDetector

    with pytest.raises(EraseError, match="threshold"):
        NudityDetector(threshold=1.5)


# -- prompt CSVs -----------------------------------------------------------------------------


@pytest.mark.skipif(not I2P.exists(), reason="I2P copy not present")
def test_i2p_counts():
    from erase.data.prompts_csv import load_i2p

    everything = load_i2p(I2P)
    assert len(everything) == 4703  # includes case 2260, whose prompt is empty
    assert sum(1 for r in everything if not r.prompt) == 1
    sexual = load_i2p(I2P, categories="sexual")
    assert len(sexual) == 931
    assert len(load_i2p(I2P, nudity_above=50)) == 95
    assert len(load_i2p(I2P, categories=["sexual"], nudity_above=50)) == 85
    assert len(load_i2p(I2P, categories="sexual", limit=10)) == 10
    first = everything[0]
    assert first.seed == 4261553411 and first.guidance == 13.0 and first.case_number == 0
    assert first.categories == ("violence", "self-harm")
    with pytest.raises(EraseError, match="unknown I2P category"):
        load_i2p(I2P, categories="nudity")


@pytest.mark.skipif(not COCO.exists(), reason="COCO captions copy not present")
def test_coco_captions():
    from erase.data.prompts_csv import load_coco_captions

    caps = load_coco_captions(COCO)
    assert len(caps) == 30000
    assert caps[0].seed == 41337 and caps[0].prompt.startswith("A bicycle replica")
    assert len(load_coco_captions(COCO, limit=5)) == 5


def test_csv_without_prompt_column(tmp_path):
    from erase.data.prompts_csv import load_i2p, load_prompt_csv

    bad = tmp_path / "bad.csv"
    bad.write_text("text,evaluation_seed\nhello,1\n")
    with pytest.raises(EraseError, match="no 'prompt' column"):
        load_prompt_csv(bad)
    with pytest.raises(EraseError, match="no 'prompt' column"):
        load_i2p(bad)


def test_prompts_from_text_and_files(tmp_path):
    from erase.data.prompts_csv import load_prompts, read_names

    assert [r.prompt for r in load_prompts("a cat | a dog")] == ["a cat", "a dog"]
    f = tmp_path / "p.txt"
    f.write_text("# comment\nfirst\n\nsecond\n")
    assert [r.prompt for r in load_prompts(f)] == ["first", "second"]
    names = tmp_path / "n.txt"
    names.write_text("A\nB\n")
    assert read_names(names) == ["A", "B"]
    names.write_text("A\nA\n")
    with pytest.raises(EraseError, match="repeats"):
        read_names(names)


# -- FID ---------------------------------------------------------------------------------------


def test_fid_zero_for_identical_and_positive_for_different():
    from erase.embedded.classifier import load_digits_classifier
    from erase.embedded.digits import real_digits_of
    from erase.metrics.fid import fid_from_images

    clf = load_digits_classifier()
    low, high = real_digits_of([0, 1, 2, 3, 4])[:300], real_digits_of([5, 6, 7, 8, 9])[:300]
    same = fid_from_images(low, low.clone(), clf)
    diff = fid_from_images(low, high, clf)
    assert abs(same) < 1e-2  # identical sets: float64 eigenvalue error only (see test_digits_fid)
    assert diff > 10 * max(abs(same), 1e-3) and diff > 1.0


# -- CLIPScore ---------------------------------------------------------------------------------


def test_clip_score_formula():
    from erase.metrics.clipscore import clip_score_from_embeddings

    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    s = clip_score_from_embeddings(a, b)
    # 100 x a float32 cosine of 2-vectors: a few roundings of eps32 (6e-8) each, x 100
    assert torch.allclose(s, torch.tensor([100.0, 0.0, 100 / 2**0.5]), atol=1e-4)


def test_tiny_clip_prefers_matching_captions():
    from erase.embedded.judge import styled_digits
    from erase.embedded.styles import STYLES, digit_prompt, style_prompt
    from erase.images import tensor_to_pil
    from erase.metrics.clipscore import clip_score, load_clip_backend

    x, d, s = styled_digits("test")
    idx = torch.arange(0, len(x), 45)[:50]
    images = tensor_to_pil(x[idx])
    backend = load_clip_backend(None)
    assert "tiny-clip" in backend.name
    match = [style_prompt(int(d[i]), STYLES[int(s[i])]) for i in idx]
    wrong_digit = [style_prompt((int(d[i]) + 3) % 10, STYLES[int(s[i])]) for i in idx]
    plain = [digit_prompt(int(d[i])) for i in idx]
    plain_wrong = [digit_prompt((int(d[i]) + 1) % 10) for i in idx]
    m, w = clip_score(backend, images, match), clip_score(backend, images, wrong_digit)
    assert m > w + 20, (m, w)  # about 90 vs 30 with the committed asset
    assert clip_score(backend, images, plain) > clip_score(backend, images, plain_wrong) + 20


def test_transformers_clip_backend_on_a_local_folder(tmp_path):
    """Any local CLIPModel folder works; embeddings via the towers' projections."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from erase.embedded.tokenizer import build_clip_tokenizer
    from erase.metrics.clipscore import clip_scores, load_clip_backend

    cfg = CLIPConfig(
        text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    proc = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32),
        tokenizer=build_clip_tokenizer(),
    )
    proc.save_pretrained(tmp_path / "clip")
    backend = load_clip_backend(str(tmp_path / "clip"))
    assert "CLIPModel" in backend.name
    from PIL import Image

    images = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    s = clip_scores(backend, images, ["a red square", "a blue square"])
    assert s.shape == (2,) and bool(((s >= 0) & (s <= 100)).all())
    with pytest.raises(EraseError, match="cannot load CLIP model"):
        load_clip_backend(str(tmp_path))  # a folder, but not a CLIPModel


# -- UnlearnCanvas -------------------------------------------------------------------------


def test_unlearncanvas_scores_by_hand():
    from erase.metrics.unlearncanvas import Prediction, unlearncanvas_scores

    P = Prediction
    recs = [
        # target style "A": 4 images, 1 still recognised as A → UA = 3/4
        P("A", "cat", "A", "cat"),
        P("A", "cat", "B", "cat"),
        P("A", "dog", "C", "cat"),
        P("A", "dog", "B", "dog"),
        # style B: 2/2 correct; style C: 1/2 correct → IRA = (1 + 0.5) / 2
        P("B", "cat", "B", "cat"),
        P("B", "dog", "B", "dog"),
        P("C", "cat", "C", "dog"),
        P("C", "dog", "A", "dog"),
    ]
    s = unlearncanvas_scores(recs, "A")
    assert s["UA"] == pytest.approx(0.75)
    assert s["IRA"] == pytest.approx(0.75)
    # objects over all images: cat 3/4 right, dog 3/4 right → CRA = 0.75
    assert s["CRA"] == pytest.approx(0.75)
    assert s["retain"] == {"B": 1.0, "C": 0.5}
    o = unlearncanvas_scores(recs, "dog", domain="object")
    assert o["UA"] == pytest.approx(0.25)  # dog images not classified as dog: 1 of 4
    assert o["IRA"] == pytest.approx(0.75)  # cat accuracy
    assert o["CRA"] == pytest.approx((0.25 + 1.0 + 0.5) / 3)  # style accuracy per style
    with pytest.raises(EraseError):
        unlearncanvas_scores(recs, "Z")


def test_unlearncanvas_prompts_and_plan():
    from erase.metrics.unlearncanvas import DEFAULT_SEEDS, generation_plan, unlearncanvas_prompt

    assert unlearncanvas_prompt("Cats", "Artist_Sketch") == "A Cats image in Artist Sketch style."
    plan = generation_plan(["Van_Gogh", "Crayon"], ["Cats", "Dogs"])
    assert DEFAULT_SEEDS == (188, 288, 588, 688, 888)
    assert len(plan) == 2 * 2 * 5
    assert plan[0]["filename"] == "Van_Gogh_Cats_seed188.jpg"


@pytest.mark.skipif(not (PROMPTS / "unlearncanvas_styles.txt").exists(), reason="no name lists")
def test_unlearncanvas_name_lists():
    from erase.data.prompts_csv import read_names

    assert len(read_names(PROMPTS / "unlearncanvas_styles.txt")) == 51
    assert len(read_names(PROMPTS / "unlearncanvas_objects.txt")) == 20


def test_vit_classifier_checkpoint_shapes(tmp_path):
    timm = pytest.importorskip("timm")
    from erase.metrics.unlearncanvas import load_vit_classifier

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3)
    torch.save({"model_state_dict": model.state_dict()}, tmp_path / "style.pth")
    loaded = load_vit_classifier(tmp_path / "style.pth", 3, arch="vit_tiny_patch16_224")
    assert loaded.head.out_features == 3
    with pytest.raises(EraseError, match="does not fit a vit_tiny_patch16_224 with 51 classes"):
        load_vit_classifier(tmp_path / "style.pth", 51, arch="vit_tiny_patch16_224")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EraseError, match="cannot read classifier checkpoint"):
        load_vit_classifier(tmp_path / "junk.pth", 3, arch="vit_tiny_patch16_224")


# -- grids and report ------------------------------------------------------------------------


def test_comparison_grid_layout():
    from PIL import Image

    from erase.grids import comparison_grid

    rows = [[Image.new("RGB", (16, 16), "white")] * 3 for _ in range(2)]
    img = comparison_grid([("base", rows), ("erased", rows)], ["p1", "p2"], ["s0", "s1", "s2"])
    # 16 px cells become 96 px (nearest, integer factor); two panels of 3 columns
    assert img.width > 2 * 3 * 96 and img.height > 2 * 96


def _fake_run(folder: Path, cos_sign: float = 1.0) -> Path:
    import json

    from PIL import Image

    folder.mkdir(parents=True)
    (folder / "erase_config.json").write_text(json.dumps({"method": "lur", "alpha": 0.03}))
    (folder / "metrics.json").write_text(
        json.dumps({"after": {"UA": 0.9, "retained_accuracy": 0.88}, "before": {"UA": 0.02}})
    )
    log = [
        {"step": i, "loss_forget": 1.0 / (i + 1), "loss_retain": 0.1, "cos": cos_sign * 0.1 * i}
        for i in range(5)
    ]
    (folder / "step_log.json").write_text(json.dumps(log))
    Image.new("RGB", (32, 32), "gray").save(folder / "grid.png")
    return folder


def test_report_renders_and_names_only_existing_figures(tmp_path):
    from erase.report import build_report, missing_figures, write_eval_result

    run_a = _fake_run(tmp_path / "lur")
    run_b = _fake_run(tmp_path / "joint", cos_sign=-1.0)
    ev = tmp_path / "eval_nudity"
    write_eval_result(
        ev,
        "nudity",
        {"summary": {"images_with_exposed": 3, "n_images": 10}, "conventions": {"NudeNet": "0.6"}},
        "# x",
    )
    report = build_report([run_a, run_b], tmp_path / "report", eval_dirs=[ev])
    text = report.read_text()
    assert "| lur |" in text and "| joint |" in text and "0.02 → 0.9" in text
    assert "### nudity" in text and "## Conventions" in text and "CLIPScore" in text
    figures = [ln for ln in text.splitlines() if ln.startswith("![")]
    assert len(figures) == 4  # two grids, two loss/cosine plots drawn from step_log.json
    assert missing_figures(report) == []
    with pytest.raises(EraseError):
        build_report([tmp_path / "nope"], tmp_path / "report2")
    assert not (tmp_path / "report2").exists()


def test_report_tables_concept_and_class_runs_with_their_own_keys(tmp_path):
    """Concept runs keep ``<key>_before/_after`` pairs; class runs keep ``before`` + top level."""
    import json

    from erase.concept_eval import summarize
    from erase.embedded.styles import DIGIT_WORDS, STYLES
    from erase.report import build_report

    def evaluation(three, inverted):
        digits = {w: (three if w == "three" else 0.9) for w in DIGIT_WORDS}
        styles = {s: (inverted if s == "inverted" else 1.0) for s in STYLES}
        return {
            "per_digit_accuracy": digits,
            "per_style_accuracy": styles,
            "styled_prompt_digit_accuracy": 0.8,
            "images_per_class": 4,
        }

    concept = tmp_path / "three-lur"
    concept.mkdir()
    (concept / "erase_config.json").write_text(json.dumps({"task": "concept", "method": "lur"}))
    met = summarize(["three"], evaluation(1.0, 1.0), evaluation(0.05, 1.0))
    (concept / "metrics.json").write_text(json.dumps(met))
    klass = tmp_path / "class-7"
    klass.mkdir()
    (klass / "erase_config.json").write_text(json.dumps({"task": "class", "method": "joint"}))
    (klass / "metrics.json").write_text(
        json.dumps({"unlearning_accuracy": 0.97, "before": {"unlearning_accuracy": 0.0}})
    )
    text = build_report([concept, klass], tmp_path / "report").read_text()
    concept_part = text.split("### Concept erasure")[1].split("### Class erasure")[0]
    assert "forget_digit_accuracy" in concept_part and "1 → 0.05" in concept_part
    assert "other_digits_accuracy" in concept_part and "0.9 → 0.9" in concept_part
    assert "forget_style_accuracy" not in concept_part  # NaN for a digit run: left out
    assert "| three-lur | 0.9 | 0.9 | 0.9 | 0.05 |" in concept_part  # digits in their order
    assert "0 → 0.97" in text.split("### Class erasure")[1]


# -- resumable generation ------------------------------------------------------------------


class _StubGenerator:
    """Stands in for a pipeline: a grey image per (prompt, seed); counts what it was asked."""

    kind, guidance_scale, num_inference_steps = "pipeline", 7.5, 50

    def __init__(self, name="stub"):
        self.name, self.calls = name, []

    def generate(self, prompts, seeds, guidance_scale=None, num_inference_steps=None, batch_size=8):
        from PIL import Image

        self.calls.append((list(prompts), list(seeds), guidance_scale))
        return [Image.new("RGB", (8, 8), (s % 255, 0, 0)) for s in seeds]


def test_generate_to_folder_resumes_and_batches_by_guidance(tmp_path):
    from erase.generators import generate_to_folder

    items = [
        {"prompt": f"p{i}", "seed": i, "guidance": 7.0 if i % 2 else 9.0, "filename": f"{i}.png"}
        for i in range(5)
    ]
    gen = _StubGenerator()
    paths = generate_to_folder(gen, items, tmp_path / "imgs", batch_size=8, progress=False)
    assert all(p.is_file() for p in paths)
    assert sorted(c[2] for c in gen.calls) == [7.0, 9.0]  # one batch per guidance scale
    (tmp_path / "imgs" / "3.png").unlink()  # as if interrupted before image 3
    gen2 = _StubGenerator()
    generate_to_folder(gen2, items, tmp_path / "imgs", progress=False)
    assert gen2.calls == [(["p3"], [3], 7.0)]  # only the missing image is generated
    with pytest.raises(EraseError, match="other settings"):
        generate_to_folder(_StubGenerator("another model"), items, tmp_path / "imgs")


def test_open_clip_backend_with_a_local_checkpoint(tmp_path):
    """open_clip with a registered (tiny) config and a checkpoint file, no download."""
    import json

    open_clip = pytest.importorskip("open_clip")
    from PIL import Image

    from erase.metrics.clipscore import clip_scores, load_clip_backend

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 16,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "EraseTiny-ViT.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    state = open_clip.create_model("EraseTiny-ViT").state_dict()
    torch.save(state, tmp_path / "ckpt.pt")
    backend = load_clip_backend("EraseTiny-ViT", checkpoint=str(tmp_path / "ckpt.pt"))
    assert backend.name.startswith("open_clip EraseTiny-ViT")
    assert torch.equal(backend.model.state_dict()["text_projection"], state["text_projection"])
    s = clip_scores(backend, [Image.new("RGB", (40, 40), "red")] * 2, ["a red square", "a dog"])
    assert s.shape == (2,)
    with pytest.raises(EraseError, match="does not exist"):
        load_clip_backend("EraseTiny-ViT", checkpoint=str(tmp_path / "missing.pt"))


def test_one_step_log_plot_draws_the_trainer_keys_and_foreign_logs():
    """erase.steplog draws both the run's step_log.png and the report's figure."""
    from erase.steplog import plot_step_log

    log = [
        {"step": i + 1, "loss_forget": 1.0 / (i + 1), "loss_retain": 0.1, "cos": 0.1, "lr": 1e-5}
        for i in range(5)
    ]
    loss_ax, cos_ax = plot_step_log(log).axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["L_f(θ)", "L_r(θ)"]
    assert [ln.get_label() for ln in cos_ax.get_lines()][0] == "cos(∇L_in(θ), ∇L_out(θ'))"
    foreign = plot_step_log({"steps": {"loss_total": [3.0, 2.0], "cos_sim": [0.5, -0.5]}})
    assert [ln.get_label() for ln in foreign.axes[0].lines] == ["loss_total"]
    assert plot_step_log([{"step": 1, "lr": 1e-5}]) is None


def test_the_erased_share_interval_is_wilsons():
    """45 of 50 erased cannot be told from 95 %: the interval says so. Checked against scipy's
    Wilson interval (z = 1.96 against scipy's exact quantile: 1e-4 apart at most)."""
    from scipy.stats import binomtest

    from erase.metrics.intervals import share_interval, wilson

    for k, n in ((45, 50), (50, 50), (0, 40), (31, 32), (281, 300)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-4)
    lo, hi = share_interval(0.9, 50)
    assert lo < 0.8 and 0.95 < hi < 0.96
    assert share_interval(1.0, 50)[1] == 1.0 and share_interval(0.0, 40)[0] == 0.0
    # the interval holds the share itself, float rounding included: 900 of 900 ends at 1.0, not
    # a hair under it (a pooled held-out share's error bar is the share minus an end)
    for k, n in ((900, 900), (0, 900), (300, 300), (1, 3)):
        lo, hi = wilson(k, n)
        assert lo <= k / n <= hi


def test_the_cards_answer_says_whether_the_run_can_be_told_from_retraining():
    """The "Is it gone?" section of both model cards: the erased share with its interval and
    the second judge, and against the references' mean the verdict the noise floor allows."""
    from erase.reference_gap import gap_record
    from erase.verdict import is_it_gone

    run = {"erased": 0.96, "kept": 0.97, "relearn@10": 0.90}
    refs = [{"erased": 1.0, "kept": 0.98, "relearn@10": 0.50}]
    refs.append({"erased": 1.0, "kept": 0.96, "relearn@10": 0.56})
    text = "\n".join(is_it_gone(0.96, [0.87, 0.99], 50, "CNN", 0.94, None, gap_record(run, refs)))
    assert "96.0% of 50 new images" in text and "95 % interval 87.0%–99.0%" in text
    assert "second judge of another model family: 94.0%" in text
    assert "Above the noise floor (5.1× the floor)" in text  # gap 0.137, floor 0.0267
    assert "back in 90% of the samples; in 2 models that never learned it, 53% on average" in text
    same = "\n".join(is_it_gone(1.0, None, 50, None, None, None, gap_record(refs[1], refs)))
    assert "cannot tell it from retraining" in same
    one = "\n".join(is_it_gone(1.0, None, 50, None, None, None, gap_record(run, refs[:1])))
    assert "`--reference auto auto auto` measures against the mean" in one
    assert "Avg. Shortfall 0.137" in text and "only by doing better" not in text
    # harder to relearn than retraining and as erased: told apart, but only by doing better
    better = {"erased": 1.0, "kept": 0.975, "relearn@10": 0.20}
    text = "\n".join(is_it_gone(1.0, None, 50, None, None, None, gap_record(better, refs)))
    assert "it can be told from retraining, but only by doing better than it" in text
    none = "\n".join(is_it_gone(None, None, None, None, None, None, None))
    assert "not evaluated here" in none and "not measured; `--reference auto`" in none
