"""Issue 27: benign fine-tuning and LoRA relearning as attacks, share-back curve summaries and
the reference's curve beside the attacked model's, on the embedded digits DDPM (tiny budgets)."""

from __future__ import annotations

import json

import pytest
import torch

from erase.attacks.curves import (
    area_under,
    best_within,
    curve_summary,
    over_reference,
    reference_gap,
    steps_until,
)
from erase.cli import attack as attack_cli
from erase.errors import EraseError

TINY = ["--samples", "6", "--relearn_images", "8", "--relearn_batch", "4"]
TINY += ["--num_inference_steps", "4", "--relearn_steps", "2", "3"]


def _attack(out, *args) -> dict:
    attack_cli.run(attack_cli.parse_args([*map(str, args), *TINY, "--output_dir", str(out)]))
    return json.loads((out / "attack.json").read_text())


def test_steps_until_half_is_interpolated_between_measured_points():
    curve = [{"steps": 0, "share": 0.1}, {"steps": 10, "share": 0.3}, {"steps": 20, "share": 0.7}]
    assert steps_until(curve) == pytest.approx(15.0)  # 0.3 → 0.7 over 10 steps: 0.5 at 15
    assert steps_until([(0, 0.6), (5, 0.9)]) == 0.0  # already back before any step
    assert steps_until([(0, 0.0), (5, 0.2), (50, 0.49)]) is None  # never reached
    assert steps_until([(0, 0.0), (10, 0.5)]) == 10.0


def test_area_under_the_curve_is_a_share():
    assert area_under([(0, 0.4), (5, 0.4), (10, 0.4), (50, 0.4)]) == pytest.approx(0.4)
    assert area_under([(0, 0.0), (10, 1.0)]) == pytest.approx(0.5)
    # uneven steps weigh by their span: 0→10 at 0 then 10→50 rising to 1
    assert area_under([(0, 0.0), (10, 0.0), (50, 1.0)]) == pytest.approx(20 / 50)
    assert curve_summary([(0, 1.0)], prefix="reference_") == {
        "reference_steps_to_half": 0.0,
        "reference_auc": 1.0,
        "reference_best_within": [[0, 1.0]],
    }
    gap = reference_gap([(0, 0.2), (5, 0.6)], [(0, 0.1), (5, 0.1), (10, 0.3)])
    assert gap == [{"steps": 0, "gap": pytest.approx(0.1)}, {"steps": 5, "gap": pytest.approx(0.5)}]


def test_the_attackers_best_within_a_budget_reads_a_dipping_curve_at_its_peak():
    """A never-learned model's curve can dip (46 % after 5 steps, 18 % after 10): budget by
    budget, a model at 30 % after 10 steps looks worse than it; by the attacker's best within
    each budget (the running maximum, what an attacker keeping its best checkpoint gets) the
    reference gives 46 % at every budget from 5 on and the model is under it throughout."""
    ref = [(0, 0.0), (5, 0.46), (10, 0.18), (20, 0.38)]
    run = [(0, 0.0), (5, 0.30), (10, 0.30), (20, 0.40)]
    assert best_within(ref) == [(0, 0.0), (5, 0.46), (10, 0.46), (20, 0.46)]
    assert [g["steps"] for g in reference_gap(run, ref) if g["gap"] > 0] == [10, 20]
    assert over_reference(run, ref) == []
    # over where the model's best exceeds the reference's: from step 10 on here
    assert over_reference([(0, 0.0), (5, 0.2), (10, 0.5), (20, 0.1)], ref) == [10, 20]
    # only budgets measured on both count, and step 0 (before any attack) never does
    assert over_reference([(0, 0.9), (7, 0.9)], ref) == []
    assert over_reference(run, ref, steps=[20]) == []


def test_benign_fine_tuning_on_a_class_ddpm_with_its_reference(tmp_path):
    """``--attack benign``: tuned on the other classes only, class 7 judged at 0, 2, 3 steps;
    ``--reference`` runs the same on a second model and stores both curves and the gap."""
    from erase.attacks.benign import class_benign_set

    data = class_benign_set(7, 8, None, size=8, channels=1)
    assert len(data["targets"]) == 8 and not (data["train_labels"] == 7).any()
    a = _attack(tmp_path, "embedded", "--forget_class", 7, "--attack", "benign")
    a_ref = _attack(
        tmp_path / "r", "embedded", "--forget_class", 7, "--attack", "benign", "--reference",
        "embedded",
    )  # fmt: skip
    for result in (a, a_ref):
        assert [p["steps"] for p in result["curve"]] == [0, 2, 3]
        assert all(0 <= p["share"] <= 1 for p in result["curve"])
        assert result["auc"] == pytest.approx(area_under(result["curve"]))
        assert result["steps_to_half"] == steps_until(result["curve"])
        assert result["settings"]["target_images"] == "the retain data"
    assert "reference_curve" not in a
    # the reference is the same model tuned on the same data: the same curve, gap 0
    assert a_ref["reference_curve"] == a_ref["curve"] == a["curve"]
    assert [g["gap"] for g in a_ref["reference_gap"]] == [0.0, 0.0, 0.0]
    assert a_ref["reference_auc"] == a_ref["auc"]
    assert a_ref["over_reference_at"] == []  # the same curve is never over itself
    assert [v for _, v in a["best_within"]] == [
        max(p["share"] for p in a["curve"][: i + 1]) for i in range(len(a["curve"]))
    ]
    assert (tmp_path / "r" / "reference" / "images").is_dir()
    from erase.report import robustness_columns

    cols = robustness_columns(tmp_path / "r")
    auc = f"{100 * a_ref['auc']:.0f}"
    assert cols["benign area under share-back (%)"] == f"{auc} / ref {auc}"
    assert "benign steps to 50 % back" in cols and "benign curve (%)" in cols
    best = "/".join(f"{100 * v:.0f}" for s, v in a_ref["best_within"] if s > 0)
    assert cols["benign best back within s steps (%)"] == f"s=2/3: {best} / ref {best}"


def test_lora_relearning_moves_only_the_adapters_and_lowers_the_loss():
    from erase.attacks.relearn import RelearnTask, relearn_curve
    from erase.embedded.digits import digits_split
    from erase.generators import load_generator
    from erase.tasks.class_erasure import predict_class

    gen = load_generator(None, classes=True, device="cpu")
    unet = gen.unet
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    split = digits_split(seed=0)
    zeros = split.train_images[split.train_labels == 0][:32]
    labels = torch.full((len(zeros),), 7)  # zeros labelled 7: something new to learn
    task = RelearnTask(zeros, labels, predict_class, gen.scheduler, 16, unet.device)
    probe = RelearnTask(zeros, labels, predict_class, gen.scheduler, 512, unet.device)

    def fixed_loss() -> float:  # the same 512 noised images every time
        with torch.no_grad():
            loss, _ = probe.closures(torch.Generator().manual_seed(123))
            return float(loss(unet))

    loss0 = fixed_loss()
    relearn_curve(
        unet, task, [15], lambda s: [False], "unused", lr=3e-3, params="lora", lora_rank=4
    )
    after = dict(unet.named_parameters())
    lora = {n for n in after if "lora_" in n}
    assert lora
    for name, p in after.items():
        if name in lora:
            continue
        old = name.replace("base_layer.", "")
        assert torch.equal(p, before[old]), name  # base weights bit-identical
    assert any(not torch.equal(after[n], torch.zeros_like(after[n])) for n in lora)
    loss1 = fixed_loss()
    print(f"fixed-batch loss {loss0:.4f} -> {loss1:.4f}")
    assert loss1 < 0.95 * loss0


@pytest.mark.parametrize(
    ("flags", "keyword"),
    [
        (["--attack", "benign", "--benign_images", "no/such/folder"], "benign_images"),
        (["--attack", "relearn", "--benign_images", "."], "benign"),
        (["--attack", "relearn", "--reference", "no/such/model"], "reference"),
        (["--attack", "benign", "--target_images", "."], "benign_images"),
        (["--attack", "relearn", "--relearn_lora_rank", "0"], "relearn_lora_rank"),
    ],
)
def test_bad_curve_flags_are_refused_before_any_work(tmp_path, flags, keyword):
    args = attack_cli.parse_args(
        ["embedded", "--forget_class", "7", *flags, "--output_dir", str(tmp_path / "a")]
    )
    with pytest.raises(EraseError, match=keyword):
        attack_cli.run(args)
    assert not (tmp_path / "a").exists()


def test_unknown_relearn_params_are_refused(capsys):
    with pytest.raises(SystemExit):
        attack_cli.parse_args(
            ["embedded", "--forget_class", "7", "--attack", "relearn", "--relearn_params", "xattn"]
            + ["--output_dir", "x"]
        )
    assert "--relearn_params" in capsys.readouterr().err


def test_benign_folders_must_not_hold_the_concept(tmp_path):
    from PIL import Image

    from erase.attacks.benign import class_benign_set

    for label in ("3", "7"):
        (tmp_path / label).mkdir()
        Image.new("L", (8, 8), 255).save(tmp_path / label / "a.png")
    with pytest.raises(EraseError, match="class 7"):
        class_benign_set(7, 8, str(tmp_path), size=8, channels=1)
    data = class_benign_set(5, 8, str(tmp_path), size=8, channels=1)
    assert data["train_labels"].tolist() == [3, 7]  # folder names are class indices


def test_frontier_report_summarises_each_runs_stored_curve(monkeypatch):
    """The comparison tables' new robustness columns come from each run's two stored points
    (before relearning, after ``relearn_steps``), averaged over runs."""
    import importlib

    from helpers import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    report = importlib.import_module("_frontier_report")
    job = {"relearn_steps": 10}
    rows = [
        {"job": job, "relearn_before": 0.3, "relearned": 0.7},  # half back at 5 steps
        {"job": job, "relearn_before": 0.1, "relearned": 0.4},  # never half back
        {"job": {"relearn_steps": 0}},  # no robustness column asked
    ]
    b = report.share_back_block(rows)
    assert (b["curves"], b["half_back_reached"]) == (2, 1)
    assert b["half_back_steps_mean"] == pytest.approx(5.0)
    assert b["back_auc_mean"] == pytest.approx((0.5 + 0.25) / 2)
    assert report._half_back(b, 10) == "5.0 (1/2)"
    assert report._half_back(report.share_back_block(rows[1:]), 10) == "> 10 (0/1)"


def test_frontier_equal_erasure_block_counts_targets_met_and_means_the_gaps(monkeypatch):
    """Equal-erasure rows: how many met the target, and the mean Avg. Gap and Avg. Shortfall
    of the runs that have them (a run without a reference counts in neither)."""
    import importlib

    from helpers import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    report = importlib.import_module("_frontier_report")
    rows = [
        {"reached": True, "steps": 100, "avg_gap": 0.10, "avg_shortfall": 0.04},
        {"reached": False, "steps": 400, "avg_gap": 0.20, "avg_shortfall": 0.20},
        {"reached": True, "steps": 200},
        {"steps": 50},  # a fixed-budget run: not in the block
    ]
    b = report.stopping_block(rows)
    assert (b["reached"], b["stopped_runs"]) == (2, 3)
    assert b["steps_mean"] == pytest.approx(700 / 3)
    assert b["avg_gap_mean"] == pytest.approx(0.15)
    assert b["avg_shortfall_mean"] == pytest.approx(0.12)
    assert report.stopping_block(rows[3:]) == {}
    # the four cells under the equal-erasure header; dashes for a method that does not train
    assert (
        report._stop_cells(b).startswith(" 2/3 | 233.33 ± ")
        and report._stop_cells(b).count("|") == 4
    )
    assert report._stop_cells({}) == " – | – | – | – |"
    pending = {"sweep": 0, "sweep_total": 0, "held_out": 0, "held_out_total": 8}
    assert report._pending_note({**pending, "forms": 0, "forms_total": 14}) == []
    note = report._pending_note({**pending, "forms": 3, "forms_total": 14})[0]
    assert "3 of 14 runs of `lur`'s forms" in note


def test_svm_judge_is_a_real_second_opinion_on_digits():
    """The check judge (scikit-learn's SVC on raw pixels) recognises real test digits of its
    class and not the others — what makes its agreement with the CNN worth reporting."""
    from erase.attacks.judges import make_judge
    from erase.embedded.digits import digits_split
    from erase.images import tensor_to_pil

    judge = make_judge("digits-svm", forget_class=3)
    assert judge.settings["test_accuracy"] >= 0.97
    split = digits_split(seed=0)
    threes = tensor_to_pil(split.test_images[split.test_labels == 3])
    others = tensor_to_pil(split.test_images[split.test_labels != 3][:200])
    assert sum(judge.sees(threes)) / len(threes) >= 0.95
    assert sum(judge.sees(others)) / len(others) <= 0.02


def test_embedded_svm_judge_is_a_real_second_opinion_on_words_and_styles():
    """The text-to-image world's check judge (SVMs on raw pixels) sees a word or a style on the
    real held-out digits rendered with it, and not on the others."""
    from erase.attacks.judges import make_judge
    from erase.embedded.judge import styled_digits
    from erase.embedded.styles import STYLES
    from erase.images import tensor_to_pil

    images, digits, styles = styled_digits("test")
    for word, shown in (("three", digits == 3), ("thick", styles == STYLES.index("thick"))):
        judge = make_judge("embedded-svm", [word], word)
        assert judge.settings["name"] == "embedded_svm" and judge.settings["target"] == word
        yes, no = tensor_to_pil(images[shown][:200]), tensor_to_pil(images[~shown][:200])
        assert sum(judge.sees(yes)) / len(yes) >= 0.9
        assert sum(judge.sees(no)) / len(no) <= 0.05


def test_check_judge_shares_sit_beside_every_curve_point(tmp_path):
    a = _attack(
        tmp_path, "embedded", "--forget_class", 7, "--attack", "relearn", "--check_judge",
        "digits-svm",
    )  # fmt: skip
    assert [p["steps"] for p in a["curve"]] == [0, 2, 3]
    assert all(0 <= p["check_share"] <= 1 for p in a["curve"])
    gaps = [abs(p["share"] - p["check_share"]) for p in a["curve"]]
    assert a["check_max_disagreement"] == pytest.approx(max(gaps))
    assert a["check_judge"]["name"] == "digits_svm"
    # the original model still draws sevens: both judges see most of them
    assert a["curve"][0]["share"] >= 0.5 and a["curve"][0]["check_share"] >= 0.5


def test_report_shows_the_second_judge_beside_the_first():
    from erase.report import _headline

    met = {
        "unlearning_accuracy": 0.9,
        "retained_accuracy": 0.97,
        "before": {"unlearning_accuracy": 0.0, "retained_accuracy": 0.98},
        "check_judge": {"judge": "svm", "unlearning_accuracy": 0.86, "retained_accuracy": 0.98},
    }
    row, _ = _headline(met)
    assert row["unlearning_accuracy"] == "0 → 0.9"
    assert row["unlearning_accuracy (second judge)"] == 0.86
    assert row["retained_accuracy (second judge)"] == 0.98
    assert "unlearning_accuracy (second judge)" not in _headline({"unlearning_accuracy": 1.0})[0]
