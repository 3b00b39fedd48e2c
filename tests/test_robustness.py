"""Robustness (issue 12) around the attacks: the benchmark that regenerates the table, the
report's robustness columns (the comparisons' are in test_benchmarks' compare smoke runs), the
attack optimizer flag and the knobs of the resisting variants, all on the embedded world."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, max_abs_diff, run_benchmark_smoke

BENCH = REPO / "benchmarks"
LR = 1e-4  # erase_class's default learning rate


def _bench(name: str, *args) -> subprocess.CompletedProcess:
    return run_benchmark_smoke(name, *args)


@pytest.fixture(scope="module")
def robustness_smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("robustness")
    _bench("robustness", "--output_dir", out)
    return out


def test_robustness_smoke_writes_the_table(robustness_smoke):
    """``benchmarks/robustness.py --smoke``: every method erased, attacked, and in the table."""
    table = json.loads((robustness_smoke / "table.json").read_text())
    md = (robustness_smoke / "table.md").read_text()
    rows = table["class"]["rows"]
    assert set(rows) == {"original", "joint", "lur-relearn"}
    for spec, r in rows.items():
        a = json.loads(
            (robustness_smoke / "class-7" / spec / "attack-relearn" / "attack.json").read_text()
        )
        assert [s for s, _ in r["relearn_curve"]] == [0, 1]
        assert r["relearn_curve"] == [[p["steps"], p["share"]] for p in a["curve"]]
        if spec != "original":
            assert 0 <= r["retained_accuracy"] <= 1 and r["erasure_seconds"] > 0
    krows = table["concept"]["rows"]
    assert set(krows) == {"original", "esd", "lur-adv"}
    for spec, r in krows.items():
        for attack in ("unlearndiff", "relearn"):
            a = json.loads(
                (
                    robustness_smoke / "concept-seven" / spec / f"attack-{attack}" / "attack.json"
                ).read_text()
            )
            assert (r[attack]["pre_asr"], r[attack]["asr"]) == (a["pre_asr"], a["asr"])
            assert f"{100 * a['pre_asr']:.0f} → {100 * a['asr']:.0f}" in md
    assert any(v.startswith("class lur-relearn") for v in table["verdicts"])
    assert any(v.startswith("concept lur-adv") for v in table["verdicts"])
    assert "Targets (issue 12)" in md and table["machine"]["threads"] >= 1


def test_method_knobs_are_parsed_into_flags():
    sys.path.insert(0, str(BENCH))
    try:
        from robustness import method_flags
    finally:
        sys.path.remove(str(BENCH))
    assert method_flags("lur-relearn") == ("lur-relearn", [])
    assert method_flags("lur-relearn+relearn_weight=3+relearn_scale=20") == (
        "lur-relearn",
        ["--relearn_weight", "3", "--relearn_scale", "20"],
    )


def test_report_reads_attacks_inside_and_next_to_a_run(robustness_smoke, tmp_path):
    """erase-report: a run with ``attack-*/attack.json`` inside, a run with an attack folder
    next to it (``RUN-attack-*``) and a bare attack folder each get their robustness row."""
    from erase.report import build_report, robustness_columns

    inside = robustness_smoke / "class-7" / "joint"
    bare = robustness_smoke / "concept-seven" / "original" / "attack-unlearndiff"
    beside = tmp_path / "esdrun"
    shutil.copytree(robustness_smoke / "concept-seven" / "esd", beside)
    shutil.move(beside / "attack-relearn", tmp_path / "esdrun-attack-relearn")
    report = build_report([inside, beside], tmp_path / "report", eval_dirs=[bare]).read_text()
    assert "## Robustness" in report
    a = json.loads((inside / "attack-relearn" / "attack.json").read_text())
    cols = robustness_columns(inside)
    assert cols["relearn ASR (%)"] == f"{100 * a['pre_asr']:.0f} → {100 * a['asr']:.0f}"
    shares = "/".join(f"{100 * p['share']:.0f}" for p in a["curve"])
    assert cols["relearn curve (%)"] == f"s=0/1: {shares}"
    assert set(robustness_columns(beside)) >= {"unlearndiff ASR (%)", "relearn ASR (%)"}
    assert "unlearndiff ASR (%)" in robustness_columns(bare)
    for name in ("joint", "esdrun", "attack-unlearndiff"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        assert "→" in row
    assert "relearn attack (original | erased | attacked)" in report  # its grid is copied


def test_attack_optimizer_adam_couples_the_decay_into_the_step():
    """``--attack_optimizer adam`` adds weight_decay·w to the gradient before Adam normalises
    it per coordinate, so where the denoising gradient is small the step follows −w; AdamW
    decays separately. Soft prompt on the original tiny SD, 10 iterations, wd 0.1: the motion
    along −w is a clear share with Adam and none with AdamW."""
    from erase.attacks import conditioning as C
    from erase.attacks import prompt_attacks as P
    from erase.generators import load_generator

    gen = load_generator(None, classes=False, device="cpu")
    pipe = gen.pipe
    prompt = "a handwritten digit seven"
    cond = C.encode_prompts(pipe, [prompt])
    x0 = C.generate(
        pipe, cond, [0], guidance_scale=gen.guidance_scale, steps=5, output_type="latent"
    )
    ids = C.token_ids(pipe, [prompt], n_slots=3)
    init = C.token_table(pipe)[P.allowed_token_ids(pipe)[:3]].float().clone()
    along = {}
    for opt in ("adam", "adamw"):
        emb = init.clone().requires_grad_(True)
        cfg = P.PromptAttackConfig(iterations=10, timesteps=1, early_stop=False, optimizer=opt)
        P._Loop(pipe, cfg).run([emb], lambda e=emb: C.encode_tokens(pipe, ids, inject=e[None]), x0)
        moved = (emb.detach() - init).flatten()
        assert moved.norm() > 0.1 * init.norm()  # both attacks move
        along[opt] = float(torch.nn.functional.cosine_similarity(moved, -init.flatten(), dim=0))
    assert along["adam"] > 0.15 and abs(along["adamw"]) < 0.05, along


def test_attack_optimizer_flag_is_recorded(tmp_path):
    from erase.cli import attack as attack_cli

    args = ["embedded", "--concept", "seven", "--attack", "soft_prompt", "--max_prompts", "1"]
    args += ["--seeds", "0", "--iterations", "1", "--timesteps", "1", "--num_inference_steps", "2"]
    result = attack_cli.run(
        attack_cli.parse_args([*args, "--attack_optimizer", "adam", "--output_dir", str(tmp_path)])
    )
    assert result["settings"]["optimizer"] == "adam"
    assert attack_cli.parse_args([*args, "--output_dir", "x"]).attack_optimizer == "adamw"
    with pytest.raises(SystemExit):
        attack_cli.parse_args([*args, "--attack_optimizer", "sgd", "--output_dir", "x"])


def _erase_class(out: Path, method: str, *flags) -> dict:
    from erase.cli import erase_class

    erase_class.run(
        erase_class.parse_args(
            ["--forget_class", "7", "--method", method, "--max_train_steps", "1"]
            + ["--train_batch_size", "4", "--no_eval", "--monitor_every", "0"]
            + ["--stop_at_erased", "off"]
            + ["--output_dir", str(out), *map(str, flags)]
        )
    )
    from helpers import load_weights

    return load_weights(out)


def test_relearn_knobs_reach_the_step(tmp_path):
    """``--relearn_weight 0`` turns lur-relearn into lur (the same weights after a step, up to
    the look-ahead's undo in floating point); the default weight moves them elsewhere; the
    knobs are recorded with the run."""
    # lur-relearn is built on the paper's order at its own λ, lur's before its default changed
    lur = _erase_class(
        tmp_path / "lur", "lur", "--meta_order", "forget_first", "--retain_weight", 0.5
    )
    w0 = _erase_class(tmp_path / "w0", "lur-relearn", "--relearn_weight", 0, "--relearn_scale", 3)
    w1 = _erase_class(tmp_path / "w1", "lur-relearn", "--relearn_scale", 3)
    # Adam's first step is ≈ lr per coordinate, so the undo's rounding may move a coordinate
    # whose gradient is ~0 by a small share of lr; the robust term moves them by ~lr.
    d0, d1 = max_abs_diff(lur, w0), max_abs_diff(lur, w1)
    print(f"max |Δ| vs lur: w=0 {d0:.3g}, w=1 {d1:.3g}")
    assert d0 < 0.1 * d1 and d1 > 0.3 * LR, (d0, d1)
    meta = json.loads((tmp_path / "w0" / "erase_config.json").read_text())["meta"]
    assert (meta["relearn_weight"], meta["relearn_scale"], meta["adv_radius"]) == (0.0, 3.0, 0.1)


def test_bad_robust_knobs_are_refused():
    from erase.cli import erase_class
    from erase.errors import EraseError

    for flag in ("relearn_scale", "relearn_weight", "adv_radius"):
        args = erase_class.parse_args(
            ["--forget_class", "7", "--output_dir", "x", f"--{flag}", "-1"]
        )
        with pytest.raises(EraseError, match=flag):
            erase_class.run(args)
