"""``benchmarks/frontier.py --smoke`` on both tasks: the comparison end to end at its smoke
size (sweep, rule, held-out runs with UA and the relearning column, step-log summaries, the
head-to-head, report and figure). In a file of its own, so that ``pytest -n 2 --dist loadfile``
can run it beside the other benchmark smoke runs instead of after them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_benchmark_smoke


def _bench(name: str, *args) -> None:
    run_benchmark_smoke(name, *args)


def _json(path: Path):
    import json

    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def _frontier_smoke(out: Path, task: str, methods: set, *args: str) -> None:
    _bench("frontier", "--task", task, "--output_dir", out, *args)
    data = _json(out / task / "frontier.json")
    assert set(data["sweep"]) == set(data["operating_points"]) == methods
    assert set(data["held_out_results"]) == methods and not data["failed"]
    for m, pts in data["sweep"].items():
        assert len(pts) == 2 and data["operating_points"][m]["value"] in [p["value"] for p in pts]
        held = data["held_out_results"][m]["all"]
        lo, hi = held["erased_interval"]
        assert held["samples"] == 4 and 0 <= lo <= held["erased_pooled"] <= hi <= 1
        assert held["seconds_mean"] >= 0
        # the robustness column: the relearning attack ran on every held-out model
        assert 0 <= held["relearned_mean"] <= 1
    assert all("relearned" in r and "relearn_n" in r for r in data["runs"] if r.get("ua_n"))
    md = (out / task / "frontier.md").read_text()
    assert all(f"| **{m}** |" in md for m in methods) and "time (s)" in md
    assert "relearning steps (%)" in md
    # the step logs of the sweep runs are summarised (cos of the forget and retain gradients)
    log = data["sweep"]["lur"][0]["steplog"]
    assert -1 <= log["cos_lookahead_first_half"] <= 1 and -1 <= log["cos_theta"] <= 1
    assert log["loss_forget_end"] > 0
    assert "What the step logs say" in md
    assert (out / task / "frontier.png").stat().st_size > 1000
    # lur against every baseline, on the one held-out concept of the smoke run
    assert set(data["head_to_head"]) == {f"lur vs {m}" for m in methods - {"lur"}}
    assert all(h["compared"] == 1 for h in data["head_to_head"].values())
    assert "against each baseline" in md and "`lur` meets the target against" in md


def test_frontier_smoke(tmp_path):
    """``frontier.py --smoke`` (class): one method of each knob the concept smoke does not
    sweep (λ: lur and joint; sparsity: salun; steps: ga — pcgrad's λ is joint's, esd's η is in
    the concept smoke), 2 knob values on digit 1, held out on 0."""
    methods = {"lur", "joint", "salun", "ga"}
    _frontier_smoke(tmp_path, "class", methods, "--methods", *sorted(methods))
    jobs = [p for p in (tmp_path / "class").glob("*/*") if (p / "result.json").is_file()]
    assert len(jobs) == 4 * 2 + 4  # resumable: a second call would skip every one of them
    # each job's CPU seconds, which the dry run times the rest from whatever the load was
    assert all(_json(p / "result.json")["job_cpu_seconds"] > 0 for p in jobs)
    # a run of one method (all its jobs done: skipped) leaves the report over every method
    _bench("frontier", "--task", "class", "--methods", "joint", "--output_dir", tmp_path)
    data = _json(tmp_path / "class" / "frontier.json")
    assert set(data["held_out_results"]) == methods
    md = (tmp_path / "class" / "frontier.md").read_text()
    assert "| **lur** |" in md and "| **ga** |" in md


@pytest.mark.slow
def test_frontier_concept_smoke(tmp_path):
    """The concept task's own knobs (λ, η, s_p); salun, ga and joint (λ, as lur's) on a concept
    run in test_model_families and, in the frontier, in the class smoke run (pcgrad's λ is
    joint's); ca and ca-noise sweep lur's λ grid with their own losses
    (tests/test_concept_ablation.py)."""
    methods = {"lur", "esd", "uce"}
    _frontier_smoke(tmp_path, "concept", methods, "--methods", *sorted(methods))
