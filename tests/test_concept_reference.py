"""The concept world's exact-unlearning reference: training without a concept, and the gap.

Training a real reference takes about 25 CPU-minutes, so the job test lets the committed
pipeline stand in for it (the plumbing, not the floor) and shrinks the relearning probe.
"""

from __future__ import annotations

import json

import pytest
import torch

from erase.embedded.styles import DIGIT_WORDS, STYLES
from erase.embedded.tiny_sd import kept_for_training, tiny_sd_path
from erase.errors import EraseError

SMALL = [
    *("--max_train_steps", "1", "--train_batch_size", "2", "--images_per_prompt", "1"),
    *("--retain_images_per_prompt", "1", "--gen_steps", "2", "--eval_images_per_class", "2"),
    *("--stop_at_erased", "off"),
]


def test_a_reference_never_sees_the_concepts_images():
    digits = torch.arange(10).repeat(len(STYLES))
    styles = torch.arange(len(STYLES)).repeat_interleave(10)
    keep = kept_for_training(digits, styles, ("seven", "thick"))
    assert not keep[digits == DIGIT_WORDS.index("seven")].any()
    assert not keep[styles == STYLES.index("thick")].any()
    # everything else stays: 9 digits in 4 styles
    assert int(keep.sum()) == 9 * (len(STYLES) - 1)
    assert kept_for_training(digits, styles, ()).all()


@pytest.mark.parametrize(
    "names, message",
    [(("seven", "cat"), "cannot exclude ['cat']"), (tuple(STYLES), "leaves no training image")],
)
def test_excluding_what_the_world_lacks_is_a_clear_error(names, message):
    with pytest.raises(EraseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        kept_for_training(torch.zeros(2), torch.zeros(2), names)


def _erase(tmp_path, *flags):
    from erase.cli import erase_concept

    out = tmp_path / "run"
    erase_concept.main([*SMALL, "--output_dir", str(out), "--overwrite", *flags])
    return out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--concept", "a photo of a cat", "--reference", "auto"], "neither"),
        (["--concept", "thick", "--reference", "no/such/folder"], "not a pipeline folder"),
        (["--concept", "thick", "--reference", "auto", "--no_eval"], "embedded world's judge"),
        (["--concept", "thick", "--reference", "auto", "off"], "takes no other reference"),
        (["--concept", "thick", "--reference", "auto", "--save_format", "unet"], "saved pipeline"),
    ],
)
def test_bad_references_are_refused_before_any_work(tmp_path, flags, message, capsys):
    with pytest.raises(SystemExit) as e:
        _erase(tmp_path, *flags)
    assert e.value.code != 0 and message in capsys.readouterr().err
    assert not (tmp_path / "run" / "erase_config.json").exists()


@pytest.mark.parametrize(
    "refs, message",
    [(["no/such/folder"], "not a model folder"), (["auto", "off"], "takes no other reference")],
)
def test_class_erasure_refuses_a_bad_reference_before_training(tmp_path, refs, message, capsys):
    """erase_class checks --reference before any work (it had met a missing folder only after
    training, when it came to measure the gap)."""
    from erase.cli import erase_class

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        erase_class.main(["--forget_class", "7", "--output_dir", str(out), "--reference", *refs])
    assert e.value.code != 0 and message in capsys.readouterr().err
    assert not out.exists()


def test_reference_off_means_none():
    from erase.reference import reference_specs

    assert reference_specs(["off"]) is None and reference_specs(None) is None
    assert reference_specs(["auto", "auto", "auto"]) == ["auto"] * 3


def test_erase_concept_measures_its_gap_to_the_reference(tmp_path, monkeypatch, capsys):
    import erase.concept_reference as cr

    monkeypatch.setenv("ERASE_CACHE_DIR", str(tmp_path / "cache"))
    probe = {"samples": 2, "steps": [1], "n_images": 2, "batch": 2, "num_inference_steps": 2}
    monkeypatch.setattr(cr, "RELEARN_PROBE", probe)
    reference = tiny_sd_path()  # stands in for a pipeline retrained without "thick"
    before = sorted(p.name for p in reference.iterdir())
    out = _erase(tmp_path, "--concept", "thick", "--reference", str(reference))

    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["reference_gap"]
    run, ref, gap = record["run"], record["reference"], record["gap"]
    # the run's own measures are the job's evaluation; the reference is the original here
    assert run["erased"] == pytest.approx(1 - metrics["forget_style_accuracy_after"])
    assert ref["erased"] == pytest.approx(1 - metrics["forget_style_accuracy_before"])
    for k in ("erased", "kept", "relearn@1"):
        assert gap[k] == pytest.approx(abs(run[k] - ref[k]))
    assert gap["avg_gap"] == pytest.approx((gap["erased"] + gap["kept"]) / 2)  # no relearn@10
    assert record["relearning"]["steps"] == [1]
    # the probe judges every point twice, as benchmarks/resist.py's attack does (it reads them)
    assert record["relearning"]["check_judge"] == "embedded-svm"
    assert all(0 <= m[f"check@{s}"] <= 1 for m in (run, ref) for s in (0, 1))
    lo, hi = metrics["erased_interval"]  # of 2 images of the style: nearly anything
    assert lo <= 1 - metrics["forget_style_accuracy_after"] <= hi and hi - lo > 0.5
    card = (out / "README.md").read_text()
    assert f"{1 - metrics['forget_style_accuracy_after']:.1%} of 2 new images" in card
    assert f"95 % interval {lo:.1%}–{hi:.1%}" in card
    second = metrics["check_judge"]["unlearning_accuracy"]
    assert f"a second judge of another model family: {second:.1%}" in card
    # the same images judged a second time by another model family (SVMs on raw pixels)
    check = metrics["check_judge"]
    assert "SVC" in check["judge"] and check["test_accuracy"]["style_accuracy"] >= 0.95
    assert check["unlearning_accuracy"] == pytest.approx(1 - check["forget_style_accuracy_after"])
    kept = (check["other_digits_accuracy_after"] + check["other_styles_accuracy_after"]) / 2
    assert check["retained_accuracy"] == pytest.approx(kept)
    # the reference's measures live in the user cache, never in the reference's folder
    assert sorted(p.name for p in reference.iterdir()) == before
    assert list((tmp_path / "cache" / "reference-measures").glob("*/*.json"))
    assert "gap to the exact-unlearning reference" in (out / "README.md").read_text().lower()
    assert "gap to the exact-unlearning reference" in capsys.readouterr().out


def test_train_tiny_sd_refuses_an_unknown_concept_to_exclude(tmp_path, capsys):
    from test_eval_cli import load_cli

    script = load_cli("scripts/train_tiny_sd.py")
    with pytest.raises(SystemExit) as e:
        script.main(["--exclude_concept", "cat", "--output_dir", str(tmp_path / "ref")])
    assert e.value.code != 0
    assert "cannot exclude ['cat']" in capsys.readouterr().err
    assert not (tmp_path / "ref" / "model_index.json").exists()


def test_train_tiny_sd_trains_its_unet_without_the_excluded_images(tmp_path, monkeypatch):
    """The mask reaches the UNet's training set (the VAE, a codec, still sees every image)."""
    import erase.embedded.tiny_sd as tiny_sd

    seen = {}

    class _Stop(Exception):
        pass

    def recording_train_unet(mean, std, digits, styles, *args, **kwargs):
        seen.update(n=len(mean), digits=digits.clone(), styles=styles.clone())
        raise _Stop  # what the UNet is given is the point, not training it

    monkeypatch.setattr(tiny_sd, "train_unet", recording_train_unet)
    with pytest.raises(_Stop):
        tiny_sd.train_tiny_sd(tmp_path / "ref", vae_steps=1, evaluate=False, exclude=("seven",))
    assert seen["n"] == len(seen["digits"]) == len(seen["styles"]) > 0
    assert not (seen["digits"] == DIGIT_WORDS.index("seven")).any()
    assert set(seen["styles"].tolist()) == set(range(len(STYLES)))  # every style stays
    assert not (tmp_path / "ref").exists()
