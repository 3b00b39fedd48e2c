"""The method registry: what each method trains with, and how a concept picks its forget loss."""

from __future__ import annotations

import pytest

from erase.concepts import resolve_concept
from erase.errors import EraseError
from erase.methods import CLASS_METHODS, CONCEPT_METHODS, get_method, resolve_forget_loss


def test_concept_forget_loss_follows_the_concept_file():
    """A concept with an anchor (a style, nudity) is mapped onto it; one without (a digit) gets
    ESD's negative guidance. Baselines keep their own loss whatever the concept."""
    style, digit = resolve_concept("inverted"), resolve_concept("three")
    assert any(style.anchor) and not any(digit.anchor)
    lur = CONCEPT_METHODS["lur"]
    assert resolve_forget_loss(lur, any(style.anchor)).forget_loss == "anchor"
    assert resolve_forget_loss(lur, any(digit.anchor)).forget_loss == "esd"
    assert resolve_forget_loss(CONCEPT_METHODS["esd"], True).forget_loss == "esd"
    assert resolve_forget_loss(CONCEPT_METHODS["ga"], True).forget_loss == "ga"
    for name in ("lur", "joint", "pcgrad"):  # the like-for-like comparison: same losses
        spec = resolve_forget_loss(CONCEPT_METHODS[name], True)
        assert (spec.forget_loss, spec.retain_loss, spec.retain_weight) == ("anchor", "preserve", 3)
    assert any(resolve_concept("nudity").anchor)


def test_look_ahead_step_defaults_follow_the_tuning_runs():
    """α = 1 × lr (one Adam-sized look-ahead; tuned on digits 2 and 4 for classes, on 'five' and
    'outlined' for concepts), following --learning_rate, and --inner_lr overrides it."""
    import argparse

    from erase.runs import add_training_args, configs_from_args

    p = argparse.ArgumentParser()
    add_training_args(p, steps=10, lr=1e-4, batch=4)
    args = p.parse_args(["--output_dir", "x"])
    assert configs_from_args(args, CLASS_METHODS["lur"])[0].inner_lr == pytest.approx(1e-4)
    assert configs_from_args(args, CONCEPT_METHODS["lur"])[0].inner_lr == pytest.approx(1e-4)
    args = p.parse_args(["--output_dir", "x", "--learning_rate", "3e-5"])
    assert configs_from_args(args, CLASS_METHODS["lur"])[0].inner_lr == pytest.approx(3e-5)
    args = p.parse_args(["--output_dir", "x", "--inner_lr", "5e-4"])
    assert configs_from_args(args, CONCEPT_METHODS["lur"])[0].inner_lr == pytest.approx(5e-4)


def test_every_class_method_has_a_concrete_loss_and_unknown_names_fail():
    assert {m.forget_loss for m in CLASS_METHODS.values()} <= {"anchor", "esd", "ga"}
    with pytest.raises(EraseError, match="unknown method 'lurr'"):
        get_method("lurr", CLASS_METHODS)


def test_lur_defaults_to_the_form_the_equal_erasure_comparison_chose(monkeypatch):
    """`--method lur` runs the form `benchmarks/frontier.py --choose_lur_form` chose on the
    tuning concepts (its committed report), at that form's operating point; the methods built
    on the meta step keep the order they were tuned with, and the flag overrides either."""
    import argparse
    import json
    from pathlib import Path

    from erase.runs import add_training_args, configs_from_args

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    from frontier import LUR_FORMS

    for task, registry in (("class", CLASS_METHODS), ("concept", CONCEPT_METHODS)):
        chosen = json.loads((bench / "frontier-equal" / task / "frontier.json").read_text())
        chosen = chosen["lur_form"]["chosen"]
        flags = LUR_FORMS[chosen][1]
        assert flags[flags.index("--meta_order") + 1] == registry["lur"].meta_order, task
        points = json.loads((bench / "frontier" / task / "frontier.json").read_text())
        assert registry["lur"].retain_weight == points["operating_points"][chosen]["value"], task
        for name in ("lur-relearn", "lur-resist"):
            assert registry[name].meta_order == "forget_first"

    p = argparse.ArgumentParser()
    add_training_args(p, steps=10, lr=1e-4, batch=4)
    args = p.parse_args(["--output_dir", "x"])
    lur = CLASS_METHODS["lur"]
    assert configs_from_args(args, lur)[0].order == "retain_first"
    pinned = lur.with_overrides(meta_order="forget_first")
    assert configs_from_args(args, pinned)[0].order == "forget_first"
