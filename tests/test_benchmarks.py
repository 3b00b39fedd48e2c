"""The benchmarks import and parse their defaults (they drive the scripts in-process, so a
renamed helper breaks them without any other test noticing)."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def _load_benchmark(path: Path, monkeypatch):
    """Import ``benchmarks/NAME.py`` as a module, with benchmarks/ on the path as when run."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_imports_and_parses_its_defaults(path, monkeypatch):
    mod = _load_benchmark(path, monkeypatch)
    assert callable(mod.main)
    if hasattr(mod, "parse_args"):
        args = mod.parse_args([])
        assert vars(args), f"{path.name} parses no arguments"


# -- every benchmark runs, in its smoke size ---------------------------------------------------
# ``--smoke`` shrinks a benchmark to seconds on the embedded world (a couple of steps, tiny
# sample counts): the numbers mean nothing, but the command users are given runs end to end
# and writes the tables it documents. Each is launched as users launch it.


def _bench(name: str, *args, timeout: float = 600) -> None:
    from helpers import run_benchmark_smoke

    run_benchmark_smoke(name, *args, timeout=timeout)


def _json(path: Path):
    import json

    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def class_comparison(tmp_path_factory) -> Path:
    """``compare_methods.py --smoke --attacks relearn``: lur and joint on digit 7, seed 0,
    each attacked (one run serves the table's, the attack column's and forget_ua's tests)."""
    out = tmp_path_factory.mktemp("bench") / "compare"
    _bench("compare_methods", "--output_dir", out, "--attacks", "relearn")
    return out


@pytest.fixture(scope="module")
def concept_comparison(tmp_path_factory) -> Path:
    """``compare_concepts.py --smoke --attacks unlearndiff``: lur and joint erasing 'three'."""
    out = tmp_path_factory.mktemp("bench") / "concepts"
    _bench("compare_concepts", "--output_dir", out, "--attacks", "unlearndiff")
    return out


def test_compare_methods_smoke(class_comparison):
    table = _json(class_comparison / "table.json")
    assert set(table["methods"]) == {"lur", "joint", "original"}
    for m in ("lur", "joint"):
        row = table["methods"][m]
        assert len(row["unlearning_accuracy"]) == 1  # one seed
        assert 0 <= row["unlearning_accuracy"][0] <= 1 and 0 <= row["retained_accuracy"][0] <= 1
        assert row["fid_remaining"][0] >= 0 and row["erasure_seconds"][0] > 0
    md = (class_comparison / "table.md").read_text()
    assert "| lur |" in md and "| joint |" in md and "| original |" in md
    # --attacks: one pre-ASR → ASR column per attack, the attack's own numbers
    for method in ("lur", "joint"):
        a = _json(class_comparison / f"{method}-seed0" / "attack-relearn" / "attack.json")
        got = table["methods"][method]["attacks"]["relearn"]
        assert (got["pre_asr"], got["asr"]) == (a["pre_asr"], a["asr"])
        assert got["curve"] == [[p["steps"], p["share"]] for p in a["curve"]]
    assert "relearn: pre-ASR → ASR (%)" in md


def test_forget_ua_smoke(class_comparison):
    _bench("forget_ua", class_comparison)
    data = _json(class_comparison / "forget_ua.json")
    assert data["samples"] == 4
    assert [r["run"] for r in data["runs"]] == ["original", "joint-seed0", "lur-seed0"]
    for r in data["runs"]:
        assert 0 <= r["missed"] <= 4 and r["ua"] == r["missed"] / 4
        lo, hi = r["interval"]
        assert 0 <= lo <= r["ua"] <= hi <= 1
    assert set(data["methods"]) == {"lur", "joint"}


def test_sweep_alpha_smoke(tmp_path):
    _bench("sweep_alpha", "--output_dir", tmp_path)
    rows = _json(tmp_path / "sweep.json")
    assert [r["config"] for r in rows] == ["joint", "lur-alpha1"]
    assert rows[1]["alpha_in_lr_units"] == 1
    assert all(0 <= r["ua"] <= 1 and 0 <= r["retained"] <= 1 for r in rows)
    assert "| lur-alpha1 |" in (tmp_path / "sweep.md").read_text()


@pytest.mark.slow
def test_compare_concepts_smoke(concept_comparison):
    table = _json(concept_comparison / "table.json")
    assert set(table) == {"three/lur", "three/joint"}
    for m in table.values():
        assert m["erased_digits"]
        for k in ("forget_digit_accuracy_before", "forget_digit_accuracy_after"):
            assert 0 <= m[k] <= 1
    md = (concept_comparison / "table.md").read_text()
    assert "| lur |" in md
    a = _json(concept_comparison / "three-lur" / "attack-unlearndiff" / "attack.json")
    assert table["three/lur"]["attacks"]["unlearndiff"]["asr"] == a["asr"]
    assert "unlearndiff: pre-ASR → ASR (%)" in md
    assert f"{100 * a['pre_asr']:.0f} → {100 * a['asr']:.0f}" in md


@pytest.mark.slow
def test_embedded_report_smoke(concept_comparison, class_comparison, tmp_path):
    _bench(
        "embedded_report",
        "--concepts_dir",
        concept_comparison,
        "--class_dir",
        class_comparison,
        "--output_dir",
        tmp_path,
    )
    for part in ("forget", "retain"):
        for label in ("original", "lur"):
            score = _json(tmp_path / "evals" / f"three-{part}-{label}" / "clipscore.json")
            assert score
    report = (tmp_path / "report" / "report.md").read_text()
    assert "three" in report and "lur" in report and "joint" in report


@pytest.mark.slow
def test_step_cost_smoke(tmp_path):
    _bench("step_cost", "--output", tmp_path / "step_cost.json")
    data = _json(tmp_path / "step_cost.json")
    methods = {"lur", "joint", "lur-2nd(full)", "lur-2nd(xattn)", "pcgrad", "esd", "salun", "ga"}
    methods.add("lur-resist")
    rows = data["results"]
    assert {r["world"] for r in rows} == {"class DDPM 8x8", "tiny SD 8x8 latents"}
    assert {r["method"] for r in rows} == methods
    for r in rows:
        assert r["error"] is None, r
        assert r["batch"] == 2 and r["cpu_median_s"] > 0 and r["total_peak_bytes"] > 0
    assert len(data["ratios_lur_over_joint"]) == 2
    # K = 3 simulated attacker steps: more work than lur's step on both worlds
    assert all(r["cpu_time"] > 1.0 for r in data["ratios_resist_over_lur"])
    assert len(data["ratios_resist_over_lur"]) == 2
    assert all(c["batched"] for c in data["esd_frozen_forward_check"])


def test_erase_time_smoke(tmp_path):
    _bench("erase_time", "--output", tmp_path / "erase_time.json")
    (r,) = _json(tmp_path / "erase_time.json")["results"]
    assert r["world"] == "tiny_sd" and r["max_train_steps"] == 2
    assert list(r["phases_s"]) == [
        "load pipeline",
        "data prep: text embeddings",
        "data prep: latent generation",
        "setup",
        "training",
        "saving",
    ]
    assert all(s >= 0 for s in r["phases_s"].values()) and r["total_s"] > 0


def test_step_dynamics_smoke(tmp_path):
    """The optimizer probe sees every step of the real trainer: one row a step, the weights
    moved, and clipping (lur-clip) caps the gradient the optimizer is handed."""
    out = tmp_path / "step_dynamics.json"
    _bench("step_dynamics", "--concepts", "five", "--labels", "lur", "lur-clip", "--output", out)
    runs = {r["label"]: r for r in _json(out)["results"]}
    for r in runs.values():
        assert r["steps"] == len(r["per_step"]) == 2
        assert r["update_norm_first5"] > 0 and r["distance_end"] > 0
        assert r["sqrt_v_hat_late"] > 0
        assert 0 <= r["erased"] <= 1
    # lur's first steps' gradients exceed 1 (a norm of about 6 here); the clipped run's do not
    assert runs["lur"]["largest_grad_norm"] > 1.5
    assert runs["lur-clip"]["largest_grad_norm"] <= 1 + 1e-5


def test_startup_smoke(tmp_path):
    _bench("startup", "--output", tmp_path / "startup.json")
    data = _json(tmp_path / "startup.json")
    (help_row,) = data["help"].values()
    # --help answers from the parser alone: torch, diffusers and transformers stay unimported
    assert help_row["seconds"] > 0 and "erase" in help_row["imports_s"]
    assert not {"torch", "diffusers", "transformers"} & set(help_row["imports_s"])
    row = data["first_step"]["erase_class"]
    assert 0 < row["to_first_step_s"] < row["to_first_step_end_s"] <= row["whole_command_s"]
    assert row["cpu_to_first_step_s"] > 0


def test_every_benchmark_has_a_smoke_run():
    """A new benchmark gets a --smoke mode and a smoke run: above, or in another test file
    that runs it with ``--smoke``."""
    tested = {n[len("test_") : -len("_smoke")] for n in globals() if n.endswith("_smoke")}
    here = Path(__file__).resolve()
    elsewhere = [t.read_text() for t in here.parent.glob("test_*.py") if t != here]
    for path in SCRIPTS:
        assert "--smoke" in path.read_text(), f"{path.name} has no --smoke mode"
        smoked = [t for t in elsewhere if path.stem in t and "--smoke" in t]
        assert path.stem in tested or smoked, f"no test runs {path.name} --smoke"


# -- the frontier's rule, order and step-log summary (no runs) --------------------------------


def _frontier_module(monkeypatch):
    return _load_benchmark(BENCH / "frontier.py", monkeypatch)


def test_frontier_rule_picks_best_retention_among_erasing_points(monkeypatch):
    fr = _frontier_module(monkeypatch)
    pts = [
        {"value": 0.25, "erased": 1.00, "retained": 0.96},
        {"value": 1.0, "erased": 0.96, "retained": 0.98},  # erases enough, keeps most
        {"value": 2.0, "erased": 0.90, "retained": 0.99},  # keeps more, erases too little
    ]
    pick = fr.choose(pts)
    assert pick["value"] == 1.0 and not pick["fallback"]
    # nothing reaches 95 %: the most erased point, marked as a fallback
    pick = fr.choose([{**p, "erased": p["erased"] - 0.2} for p in pts])
    assert pick["value"] == 0.25 and pick["fallback"]
    assert fr.choose([]) is None
    # exactly 95 % erased, as the runs store it (float32 19/20), meets the ≥ 95 % target
    edge = [{"value": 1, "erased": 1.0, "retained": 0.5}]
    edge += [{"value": 2, "erased": 0.949999999254942, "retained": 0.9}]
    assert fr.choose(edge)["value"] == 2


def test_frontier_held_out_runs_go_seed_by_seed(monkeypatch, tmp_path):
    fr = _frontier_module(monkeypatch)
    args = fr.parse_args(["--task", "class", "--methods", "lur", "joint"])
    points = {"lur": {"value": 0.5}, "joint": {"value": 1.0}}
    jobs = fr.heldout_jobs(args, tmp_path, points)
    assert len(jobs) == 2 * 6 * 3
    seeds = [j["seed"] for j in jobs]
    assert seeds == sorted(seeds)  # every method and digit with seed 0 before any seed 1
    assert [(j["label"], j["concept"]) for j in jobs[:2]] == [("lur", "0"), ("joint", "0")]
    first = jobs[: 2 * 6]
    assert {(j["label"], j["concept"]) for j in first} == {
        (m, d) for m in ("lur", "joint") for d in ("0", "3", "5", "6", "8", "9")
    }
    assert all(j["relearn_steps"] == 10 and j["ua_samples"] == 300 for j in jobs)
    assert jobs[0]["argv"][-2:] == ["--retain_weight", "0.5"]
    # uce draws nothing at random: its held-out runs go once, not once a seed
    args = fr.parse_args(["--task", "concept", "--methods", "uce", "lur"])
    jobs = fr.heldout_jobs(args, tmp_path, {"uce": {"value": 3.0}, "lur": {"value": 3.0}})
    assert {j["seed"] for j in jobs if j["label"] == "uce"} == {0}
    assert {j["seed"] for j in jobs if j["label"] == "lur"} == {0, 1, 2}
    assert len(jobs) == len(args.held_out) * (1 + 3)


def test_frontier_equal_erasure_trains_each_reference_once_before_the_held_out_runs(
    monkeypatch, tmp_path, capsys
):
    """With --equal_erasure --reference every held-out run measures against seed 0 of its
    concept's reference, and the first held-out concept's also against seed 1 (the noise floor:
    references cost ~25 CPU-minutes each). Two runs of one concept side by side would each train it, so the
    missing references go to the workers first, once each; cached ones are not retrained, and
    the dry run counts their hours."""
    from erase.reference import digits_reference_path

    fr = _frontier_module(monkeypatch)
    monkeypatch.setenv("ERASE_CACHE_DIR", str(tmp_path / "cache"))
    flags = ["--task", "class", "--methods", "lur", "joint", "--equal_erasure", "0.95"]
    args = fr.parse_args([*flags, "--reference"])
    specs = fr.reference_specs(args)
    digits = ("0", "3", "5", "6", "8", "9")
    assert [(s["concept"], s["seed"]) for s in specs] == [("0", 0), ("0", 1)] + [
        (d, 0) for d in digits[1:]
    ]
    assert not any(s["cached"] for s in specs)
    cached = digits_reference_path([0], 0)
    (cached / "unet").mkdir(parents=True)
    (cached / "unet" / "config.json").write_text("{}")
    (cached / "world.json").write_text("{}")

    class Recording:  # the frontier's own Pool, recording instead of training for 25 minutes
        def map(self, jobs, fn):
            self.jobs, self.fn = jobs, fn
            return [{**j, "seconds": 1.0} for j in jobs]

    pool = Recording()
    fr.train_references(args, pool)
    assert pool.fn is fr.train_reference and len(pool.jobs) == 6
    assert ("0", 0) not in {(j["concept"], j["seed"]) for j in pool.jobs}
    jobs = fr.heldout_jobs(args, tmp_path, {"lur": {"value": 0.5}, "joint": {"value": 1.0}})
    for j in jobs:  # the noise floor's second reference for digit 0 only
        first, second = j["argv"][j["argv"].index("--reference") + 1 :][:2]
        assert first == "auto" and (second == "auto") == (j["concept"] == "0")
    fr.dry_run(args, tmp_path / "out" / "class")
    assert "references: 7 (6 to train, ~1520 s each)" in capsys.readouterr().out
    # --reference_seeds 3: seeds 0-2 of every digit, each run measured against all three
    args = fr.parse_args([*flags, "--reference", "--reference_seeds", "3"])
    assert len(fr.reference_specs(args)) == 3 * len(digits)
    for j in fr.heldout_jobs(args, tmp_path, {"lur": {"value": 0.5}, "joint": {"value": 1.0}}):
        after = j["argv"][j["argv"].index("--reference") + 1 :]
        assert after[:3] == ["auto"] * 3 and after[3] != "auto"
    with pytest.raises(SystemExit):
        fr.parse_args([*flags, "--reference_seeds", "2"])  # without --reference
    # the fixed-budget frontier, or equal erasure without --reference, trains none
    assert fr.reference_specs(fr.parse_args(flags)) == []
    assert fr.reference_specs(fr.parse_args(["--task", "class", "--reference"])) == []


def test_frontier_brings_results_up_to_the_references_measured_since(monkeypatch, tmp_path):
    """A held-out result measured against seed 0 only, once --reference_seeds 2 asks for two:
    the seed-1 reference's measures, taken since with the run's own probe settings (by a run or
    reference_spread.py), are added and the gap recomputed against the mean, in result.json
    too; without them the result stays as it was; measured again, they replace its copy."""
    import json

    from erase.concept_reference import measure_settings, relearn_settings
    from erase.concepts import resolve_concept
    from erase.reference import concept_reference_path
    from erase.reference_gap import _key, gap_record, measures_dir

    fr = _frontier_module(monkeypatch)
    monkeypatch.setenv("ERASE_CACHE_DIR", str(tmp_path / "cache"))
    flags = ["--task", "concept", "--methods", "lur", "--equal_erasure", "0.95", "--reference"]
    args = fr.parse_args([*flags, "--reference_seeds", "2"])
    run = {"erased": 0.96, "kept": 0.95, "relearn@5": 0.8, "relearn@10": 1.0}
    ref0 = {"erased": 1.0, "kept": 0.97, "relearn@5": 0.2, "relearn@10": 0.76}
    ref1 = {"erased": 0.98, "kept": 0.97, "relearn@5": 0.04, "relearn@10": 0.06}
    out = tmp_path / "out" / "concept"
    job = {"concept": "thick", "label": "lur", "seed": 1, "run_dir": "elsewhere/thick-lur-s1"}
    numbers = fr.gap_numbers({"reference_gap": gap_record(run, [ref0])})
    result = {"job": job, "erased": 0.97, **numbers}
    assert fr.with_stored_references(result, args, out) is result  # seed 1 not measured yet
    folder = concept_reference_path(["thick"], 1)
    (folder / "unet").mkdir(parents=True)
    relearn = relearn_settings("thick", len(resolve_concept("thick").forget), 1)
    cached = measures_dir(folder)
    cached.mkdir(parents=True)
    key = _key(measure_settings(40, relearn))  # the key the gap probe caches them under
    (cached / f"{key}.json").write_text(json.dumps({"measures": ref1}))
    (out / "heldout" / "thick-lur-s1").mkdir(parents=True)
    updated = fr.with_stored_references(result, args, out)
    assert updated["each_reference"] == [ref0, ref1] and updated["erased"] == 0.97
    assert updated["gap_reference"]["relearn@10"] == pytest.approx(0.41)
    assert updated["avg_gap"] == pytest.approx((0.03 + 0.02 + 0.59) / 3)
    assert updated["noise_floor"] == pytest.approx((0.02 + 0.0 + 0.70) / 3)
    stored = json.loads((out / "heldout" / "thick-lur-s1" / "result.json").read_text())
    assert stored["avg_gap"] == pytest.approx(updated["avg_gap"])
    assert fr.with_stored_references(updated, args, out) is updated  # two of two: as it is
    # seed 1 measured again (a probe that fed it the original's latents was wrong): replaced
    ref1b = {**ref1, "relearn@10": 0.46}
    (cached / f"{key}.json").write_text(json.dumps({"measures": ref1b}))
    fixed = fr.with_stored_references(updated, args, out)
    assert fixed["each_reference"] == [ref0, ref1b]
    assert fixed["gap_reference"]["relearn@10"] == pytest.approx(0.61)
    # another run seed's probe is another measurement: not taken from seed 1's
    other = {**result, "job": {**job, "seed": 2}}
    assert fr.with_stored_references(other, args, out) is other


def test_frontier_jobs_report_their_failure_instead_of_raising(tmp_path, monkeypatch):
    """A worker's job that fails (a script's error exit, a reference that cannot be trained)
    comes back as ``{"error": ...}`` naming why, so the other jobs go on."""
    fr = _frontier_module(monkeypatch)
    argv = ["--method", "no-such-method", "--output_dir", str(tmp_path / "run")]
    job = {"run_dir": str(tmp_path / "run"), "task": "class", "argv": argv, "ua_samples": 0}
    r = fr.run_job(job)
    assert r["job"] is job and r["error"].startswith("SystemExit")
    assert not (tmp_path / "run" / "result.json").exists()
    r = fr.train_reference({"task": "class", "concept": "seven", "seed": 0})
    assert r["concept"] == "seven" and r["error"].startswith("ValueError")


def test_a_finished_run_without_its_many_image_ua_is_measured_again_not_retrained(
    tmp_path, monkeypatch
):
    """A form finished before the forms were judged on many new images: the job is not done,
    and running it adds the share without training again, keeping the run's own job times."""
    fr = _frontier_module(monkeypatch)
    from _scripts import CLASS_SMOKE

    run = tmp_path / "run"
    argv = ["--forget_class", "7", "--method", "lur", "--output_dir", str(run), *CLASS_SMOKE]
    argv += ["--stop_at_erased", "off"]
    job = {"run_dir": str(run), "task": "class", "argv": argv, "ua_samples": 0}
    first = fr.run_job(job)
    assert "error" not in first and fr._done(job) and "ua_n" not in first
    weights = next(run.glob("unet/*.safetensors"))
    stamp = weights.stat().st_mtime_ns
    job = {**job, "ua_samples": 3}
    assert not fr._done(job)
    again = fr.run_job(job)
    assert again["ua_n"] == 3 and again["erased"] == again["ua_missed"] / 3 and fr._done(job)
    assert weights.stat().st_mtime_ns == stamp  # not trained again
    assert again["job_cpu_seconds"] == first["job_cpu_seconds"]
    assert again["remeasured_cpu_seconds"] > 0 and again["retained"] == first["retained"]


def test_frontier_robustness_column_reuses_the_gap_probe_of_equal_erasure_runs(monkeypatch):
    """An equal-erasure run with --reference has already relearned its concept for the gap: the
    robustness column reads that curve instead of attacking again, and attacks where it cannot."""
    fr = _frontier_module(monkeypatch)
    run = {"erased": 0.9, "relearn@0": 0.04, "relearn@5": 0.6, "relearn@10": 0.9}
    metrics = {"reference_gap": {"run": run, "relearning": {"samples": 50, "steps": [5, 10]}}}
    assert fr.gap_probe_share(metrics, 10) == {
        "relearn_before": 0.04,
        "relearned": 0.9,
        "relearn_n": 50,
        "relearn_from": "the reference-gap probe",
    }
    assert fr.gap_probe_share(metrics, 20) is None  # no point there: the attack runs
    assert fr.gap_probe_share({"unlearning_accuracy": 0.9}, 10) is None  # no --reference


def test_frontier_results_take_the_reference_numbers_afresh_from_the_runs_metrics(
    monkeypatch, tmp_path
):
    """A result written before the report kept the reference's numbers is brought up to date
    from the run's metrics.json while it is there; a checkout with only result.json keeps it."""
    import json

    from erase.reference_gap import gap_record

    fr = _frontier_module(monkeypatch)
    run = {"erased": 0.96, "kept": 0.95, "relearn@5": 0.4, "relearn@10": 0.7}
    ref = {"erased": 1.0, "kept": 0.97, "relearn@5": 0.2, "relearn@10": 0.5}
    metrics = {"stopping": {"reached": True}, "trained_steps": 75}
    metrics["reference_gap"] = gap_record(run, [ref])
    (tmp_path / "result.json").write_text(json.dumps({"job": {}, "erased": 0.97}))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    result = fr._read_result(tmp_path)
    assert result["gap_reference"] == ref and result["gap_run"] == run
    assert result["steps"] == 75 and result["erased"] == 0.97  # the many-sample UA stays
    assert json.loads((tmp_path / "result.json").read_text())["gap_reference"] == ref
    (tmp_path / "metrics.json").unlink()
    assert fr._read_result(tmp_path)["gap_reference"] == ref
    # a record written when the first of two references was the reference, and its gap was
    # to that one: recomputed against the two references' mean, the floor between them
    ref1 = {"erased": 1.0, "kept": 0.95, "relearn@5": 0.0, "relearn@10": 0.1}
    old = {"run": run, "reference": ref, "second_reference": ref1, "gap": {"avg_gap": 0.1}}
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "reference_gap": old}))
    result = fr._read_result(tmp_path)
    assert result["gap_reference"] == pytest.approx(
        {"erased": 1.0, "kept": 0.96, "relearn@5": 0.1, "relearn@10": 0.3}
    )
    assert result["avg_gap"] == pytest.approx((0.04 + 0.01 + 0.4) / 3)
    assert result["noise_floor"] == pytest.approx((0.0 + 0.02 + 0.4) / 3)
    assert result["each_reference"] == [ref, ref1]


def test_frontier_steplog_summary(monkeypatch, tmp_path):
    import json

    fr = _frontier_module(monkeypatch)
    rows = [
        {"step": s + 1, "cos": c, "grad_norm": 2.0, "loss_forget": f, "loss_retain": 0.1}
        for s, (c, f) in enumerate([(-0.5, 0.4), (-0.1, 0.3), (0.2, 0.2), (0.4, 0.1)])
    ]
    (tmp_path / "step_log.json").write_text(json.dumps(rows))
    g = fr.steplog_summary(tmp_path)
    assert g["steps"] == 4 and g["cos_theta_negative_share"] == 0.5
    assert g["cos_theta"] == pytest.approx(0.0) and g["cos_lookahead_first_half"] is None
    # lur: "cos" is at the look-ahead point, "cos_at_theta" every few steps at θ
    for r in rows:
        r["loss_retain_lookahead"] = r.pop("loss_retain")
    # second-order lur logs no cos at θ: its "cos" is at θ', not at θ
    (tmp_path / "step_log.json").write_text(json.dumps(rows))
    g = fr.steplog_summary(tmp_path)
    assert g["cos_theta"] is None and g["cos_lookahead_first_half"] == pytest.approx(-0.3)
    rows[0]["cos_at_theta"], rows[2]["cos_at_theta"] = 0.5, 0.7
    (tmp_path / "step_log.json").write_text(json.dumps(rows))
    g = fr.steplog_summary(tmp_path)
    assert g["cos_theta"] == pytest.approx(0.6) and g["cos_theta_negative_share"] == 0
    assert g["cos_lookahead_first_half"] == pytest.approx(-0.3)
    assert g["cos_lookahead_second_half"] == pytest.approx(0.3)
    assert g["loss_forget_end"] == pytest.approx(0.25) and g["loss_retain_end"] == 0.1
    # the retain loss at θ, logged by lur on its monitor steps only: first and last third
    assert g["loss_retain_theta_first_third"] is None
    rows[0]["loss_retain"], rows[3]["loss_retain"] = 0.12, 0.15
    rows[3]["grad_norm"] = 9.0
    (tmp_path / "step_log.json").write_text(json.dumps(rows))
    g = fr.steplog_summary(tmp_path)
    assert g["loss_retain_theta_first_third"] == 0.12 and g["loss_retain_theta_last_third"] == 0.15
    assert g["grad_norm_max"] == 9.0
    job = {"label": "lur"}
    table = fr.heldout_steplog_table([{"job": job, "steplog": g}], ["lur", "joint"])
    assert table[2].startswith("| lur | 1 | 0.1200 | 0.1500 |") and len(table) == 3
    assert fr.steplog_summary(tmp_path / "missing") is None


def test_frontier_equal_erasure_takes_the_fixed_budget_operating_points(
    monkeypatch, tmp_path, capsys
):
    """At equal erasure the comparison reruns the held-out concepts at the operating points
    the committed fixed-budget comparison chose (no sweep), and the concept task holds out its
    first four concepts, so that the whole comparison fits a night; both can be asked for."""
    import json

    fr = _frontier_module(monkeypatch)
    flags = ["--task", "class", "--methods", "lur", "joint", "--equal_erasure", "0.95"]
    args = fr.parse_args([*flags, "--output_dir", str(tmp_path)])
    committed = json.loads((BENCH / "frontier" / "class" / "frontier.json").read_text())
    chosen = committed["operating_points"]
    jobs = fr.heldout_jobs(args, tmp_path, fr.points_from_file(args.points_from, args.labels)[1])
    for label in ("lur", "joint"):
        value = fr._fmt_value(chosen[label]["value"])
        assert {Path(j["run_dir"]).name for j in jobs if j["label"] == label} >= {
            f"0-{label}-lambda{value}-seed0"
        }
    fr.dry_run(args, tmp_path / "class")
    out = capsys.readouterr().out
    assert "## sweep: 0 jobs" in out and "no sweep" in out
    assert fr.parse_args([*flags, "--points_from", "none"]).points_from is None
    concept = fr.parse_args(["--task", "concept", "--equal_erasure", "0.95"])
    assert concept.held_out == fr.HELD_OUT["concept"][: fr.NIGHT_CONCEPTS]
    assert fr.parse_args(["--task", "concept"]).held_out == fr.HELD_OUT["concept"]
    assert fr.parse_args(["--task", "concept", "--held_out", "nine", "zero"]).held_out == [
        "nine",
        "zero",
    ]
    with pytest.raises(SystemExit):
        fr.parse_args(["--task", "concept", "--held_out", "purple"])
    with pytest.raises(SystemExit, match="has no operating point for"):
        fr.points_from_file(BENCH / "frontier" / "class" / "frontier.json", {"uce": None})
    with pytest.raises(SystemExit, match="does not exist"):
        fr.points_from_file(tmp_path / "nowhere" / "frontier.json", {"lur": None})
    # the report says where the operating points came from, by a path inside the checkout
    given = ["--points_from", BENCH / "frontier", "--report_only"]  # (smoke runs sweep)
    _bench("frontier", *flags, *given, "--output_dir", tmp_path / "report")
    md = (tmp_path / "report" / "class" / "frontier.md").read_text()
    assert "Operating points taken from `benchmarks/frontier/class/frontier.json`" in md


def test_frontier_equal_erasure_runs_lurs_forms_on_the_tuning_concepts(monkeypatch, tmp_path):
    """At equal erasure lur and its six variants run on the tuning concepts first (seed 0, the
    sweep's 20 evaluation images, no reference), each at the committed operating point; the
    rule's choice joins the held-out methods when it is a variant. Off when lur is not among
    the methods, when asked off, and an error without equal erasure."""
    import json

    fr = _frontier_module(monkeypatch)
    flags = ["--task", "concept", "--methods", "lur", "joint", "--equal_erasure", "0.95"]
    args = fr.parse_args([*flags, "--reference", "--output_dir", str(tmp_path)])
    out = tmp_path / "concept"
    jobs = fr.form_jobs(args, out)
    committed = json.loads((BENCH / "frontier" / "concept" / "frontier.json").read_text())
    assert {(j["label"], j["concept"]) for j in jobs} == {
        (f, c) for f in fr.LUR_FORMS for c in fr.TUNING["concept"]
    }
    for j in jobs:
        argv, (_, form_flags, _) = j["argv"], fr.LUR_FORMS[j["label"]]
        assert j["seed"] == 0 and j["phase"] == "forms" and "--reference" not in argv
        assert " ".join(form_flags) in " ".join(argv)
        assert argv[argv.index("--eval_images_per_class") + 1] == "20"
        assert float(argv[-1]) == committed["operating_points"][j["label"]]["value"]
        # judged on many new images (the rule reads the target from them), never relearned
        assert j["ua_samples"] == args.ua_samples and not j["relearn_steps"]
    assert fr.form_jobs(fr.parse_args([*flags, "--no-choose_lur_form"]), out) == []
    assert fr.form_jobs(fr.parse_args([*flags[:3], "joint", *flags[-2:]]), out) == []
    with pytest.raises(SystemExit):
        fr.parse_args(["--task", "concept", "--choose_lur_form"])

    # finished forms are read back; lur-k2 keeps the most of the rest and joins the held-out
    for j in jobs:
        run = Path(j["run_dir"])
        run.mkdir(parents=True)
        kept = 0.97 if j["label"] == "lur-k2" else 0.95
        row = {"erased": 0.96, "retained": kept, "steps": 50, "seconds": 20.0, "reached": True}
        row.update(ua_missed=288, ua_n=300)  # judged on 300 new images: 96 % erased
        (run / "result.json").write_text(json.dumps({"job": j, **row, "job_seconds": 30}))
    points = fr.points_from_file(args.points_from, args.labels)[1]
    assert len(fr.run_forms(args, out, None, points)) == len(jobs)
    assert args.form == "lur-k2" and "lur-k2" in args.labels
    held = fr.heldout_jobs(args, out, points)
    assert {j["label"] for j in held} == {"lur", "joint", "lur-k2"}


def test_frontier_report_rebuilds_the_committed_equal_erasure_tables(tmp_path):
    """The committed equal-erasure results (result.json files only) rebuild their report: every
    table row has as many cells as its header, the reference table and the forms' section are
    there, and the rule's choice is the one the committed frontier.json records."""
    import json
    import shutil
    import subprocess

    from helpers import cli_env

    committed = BENCH / "frontier-equal" / "concept"
    out = tmp_path / "equal"
    shutil.copytree(committed, out / "concept", ignore=lambda d, names: [
        n for n in names if (Path(d) / n).is_file() and n != "result.json"
    ])  # fmt: skip
    flags = ["--task", "concept", "--equal_erasure", "0.95", "--reference", "--report_only"]
    res = subprocess.run(  # not --smoke: the smoke size has one concept and sweeps
        [sys.executable, str(BENCH / "frontier.py"), *flags, "--output_dir", str(out)],
        capture_output=True,
        text=True,
        cwd=BENCH.parent,
        env=cli_env(),
        timeout=300,
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-3000:]
    md = (out / "concept" / "frontier.md").read_text()
    header = None
    for line in md.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        if header is None:
            header = line.count("|")
        elif not line.startswith("|---"):
            assert line.count("|") == header, line
    assert "## Against the model that never learned the concept" in md
    assert "| zero | never learned (seed 1) |" in md
    assert "| zero | never learned, mean of 2 (gap: the noise floor) | 2 |" in md
    chosen = json.loads((committed / "frontier.json").read_text())["lur_form"]["chosen"]
    assert f"Chosen: **{chosen}**." in md and f"| **{chosen} ←** |" in md


def test_lur_form_rule(monkeypatch):
    """Among the forms that reach the target on every tuning concept: the best mean kept
    accuracy, and within a point of it the fastest; none reaching: the most erased; nothing
    until every form has run."""
    monkeypatch.syspath_prepend(str(BENCH))
    import _lur_form as lf

    def run(form, concept, erased, kept, seconds, reached=True):
        job = {"label": form, "concept": concept}
        row = {"erased": erased, "retained": kept, "steps": 25, "seconds": seconds}
        return {"job": job, **row, "reached": reached}

    tuning, forms = ["a", "b"], {"lur": 1.0, "lur-k2": 1.5, "lur-clip": 1.0}
    results = [
        run("lur", "a", 0.96, 0.950, 10),
        run("lur", "b", 0.97, 0.950, 10),
        run("lur-k2", "a", 0.96, 0.958, 30),  # best kept, but slower and within a point
        run("lur-k2", "b", 0.96, 0.958, 30),
        run("lur-clip", "a", 0.99, 0.990, 5),  # keeps most, misses the target on b
        run("lur-clip", "b", 0.95, 0.990, 5, reached=False),
    ]
    rows = lf.summarise(results, forms, tuning)
    assert rows["lur-clip"]["reached_all"] is False and rows["lur"]["reached_all"] is True
    assert rows["lur-k2"]["cost"] == 25 * 1.5  # in lur steps: load-free, unlike seconds
    assert lf.choose_form(rows) == "lur"  # 0.8 points under lur-k2: the cheaper one
    results[0]["steps"] = results[1]["steps"] = 40  # now dearer than lur-k2's 37.5
    assert lf.choose_form(lf.summarise(results, forms, tuning)) == "lur-k2"
    results[0]["steps"] = results[1]["steps"] = 25
    results[2]["retained"] = results[3]["retained"] = 0.965  # now 1.5 points better
    assert lf.choose_form(lf.summarise(results, forms, tuning)) == "lur-k2"
    for r in results:
        r["reached"] = False
    assert lf.choose_form(lf.summarise(results, forms, tuning)) == "lur-clip"  # most erased
    assert lf.choose_form(lf.summarise(results[:-1], forms, tuning)) is None  # one still to run
    section = "\n".join(lf.form_section(rows, "lur", {"lur-k2": ["--inner_steps", "2"]}, tuning))
    assert "| **lur ←** | (defaults) | 25, 96.0, 95.0 | 25, 97.0, 95.0 | yes |" in section
    assert "| lur-clip |" in section and "25 (not reached), 95.0 (short), 99.0" in section
    assert "Chosen: **lur**." in section


def test_lur_form_rule_reads_the_target_from_many_new_images_not_the_check(monkeypatch):
    """A form whose 32-seed check never met 95 % (a fixed set with three stubborn seeds) but
    whose 300 new images are 98 % erased reached the target; one whose check met it but whose
    new images read 85 % did not. Runs without many-image shares keep their check's verdict."""
    monkeypatch.syspath_prepend(str(BENCH))
    import _lur_form as lf

    def run(form, concept, kept, reached, missed=None):
        job = {"label": form, "concept": concept}
        row = {"erased": 0.9, "retained": kept, "steps": 600, "seconds": 1.0, "reached": reached}
        if missed is not None:
            row.update(ua_missed=missed, ua_n=300, erased=missed / 300)
        return {"job": job, **row}

    forms, tuning = {"lur": 1.0, "lur-k2": 1.5}, ["1", "2"]
    results = [
        run("lur", "1", 0.89, True, missed=300),
        run("lur", "2", 0.97, True, missed=255),  # check met, 85 % of new images erased
        run("lur-k2", "1", 0.98, False, missed=294),  # check never met, 98 % erased
        run("lur-k2", "2", 0.98, True, missed=290),
    ]
    assert not lf.reached(results[1], 0.95) and lf.reached(results[2], 0.95)
    # 282 of 300 (94 %): the interval's upper end (96.3 %) is over 95 %: not shown short
    assert lf.reached({"ua_missed": 282, "ua_n": 300}, 0.95)
    assert not lf.reached({"ua_missed": 270, "ua_n": 300}, 0.95)  # 90 %: up to 92.9 %
    rows = lf.summarise(results, forms, tuning, 0.95)
    assert rows["lur"]["reached_all"] is False and rows["lur-k2"]["reached_all"] is True
    assert rows["lur-k2"]["concepts"]["1"]["check_reached"] is False
    assert lf.choose_form(rows) == "lur-k2"
    # without a target (or without many-image shares) the check decides, as before
    assert lf.summarise(results, forms, tuning)["lur"]["reached_all"] is True
    section = "\n".join(lf.form_section(rows, "lur-k2", {}, tuning))
    assert "600 (not reached), 98.0, 98.0" in section and "600, 85.0 (short), 97.0" in section


def test_frontier_reference_table_sets_the_never_learned_model_beside_each_method(monkeypatch):
    """The equal-erasure report's table: per concept the reference's own numbers and relearning
    curve, the second reference with the noise floor, then each method's means; and on how
    many concepts lur's Avg. Gap is below each method's. Built from real gap records."""
    from erase.reference_gap import gap_record

    monkeypatch.syspath_prepend(str(BENCH))
    import _reference_table as rt

    def measures(erased, kept, back):
        m = {"erased": erased, "kept": kept, "fid": 1.5}
        return m | {f"relearn@{s}": b for s, b in zip((0, 5, 10, 20), back)}

    ref, ref2 = measures(1.0, 0.97, (0, 0.2, 0.5, 0.8)), measures(1.0, 0.96, (0, 0.3, 0.5, 0.9))
    results = []
    for concept, label, seed, back10 in [
        ("zero", "lur", 0, 0.6),
        ("zero", "lur", 1, 0.8),
        ("zero", "joint", 0, 0.9),
        ("thick", "lur", 0, 0.9),
        ("thick", "joint", 0, 0.7),
    ]:
        run = measures(0.96, 0.95, (0.1, 0.4, back10, 1.0))
        refs = [ref, ref2] if concept == "zero" else [ref]
        record = gap_record(run, refs)
        numbers = rt.gap_numbers({"reference_gap": record})
        gap = record["gap"]
        job = {"concept": concept, "label": label, "seed": seed}
        results.append({"job": job, **numbers, "avg_gap": gap["avg_gap"], "avg_shortfall": 0.1})
    assert results[0]["noise_floor"] == pytest.approx((0.01 + 0.0) / 3)  # kept 1 pt, erased 0
    assert rt.gap_numbers({}) == {} and rt.gap_numbers({"reference_gap": {"run": {}}}) == {}
    lines = rt.reference_table(results, ["zero", "thick", "one"], ["lur", "joint"])
    text = "\n".join(lines)
    assert (
        "| **zero** | never learned (seed 0) | 1 | 100.0 | 97.0 | 1.50 | 20.0 / 50.0 / 80.0 |"
        in text
    )
    assert "| zero | never learned (seed 1) | 1 | 100.0 | 96.0 |" in text
    floor = f"{results[0]['noise_floor']:.3f}"
    mean = "| 100.0 | 96.5 | 1.50 | 25.0 / 50.0 / 85.0 | " + floor + " |"
    assert "| zero | never learned, mean of 2 (gap: the noise floor) | 2 " + mean in text
    assert "thick | never learned, mean" not in text  # one reference: no mean, no floor
    # lur on zero: the mean of its two runs (back after 10: 60 and 80 %), Avg. Gap their mean
    lur_gap = statistics.mean(r["avg_gap"] for r in results[:2])
    assert f"| zero | lur | 2 | 96.0 | 95.0 | 1.50 | 40.0 / 70.0 / 100.0 | {lur_gap:.3f} |" in text
    assert "one" not in text.split("|---|")[-1]  # no runs, no rows
    assert "- `lur` below `joint`: 1 of 2 concepts" in text  # zero yes, thick no
    assert rt.reference_table([{"job": {}, "error": "x"}], ["zero"], ["lur"]) == []


def test_frontier_dry_run_lists_held_out_runs_at_the_chosen_knob_value(
    monkeypatch, tmp_path, capsys
):
    """Once a method's sweep is done, the listing (and its time estimate) uses the value the
    rule picks, not the grid's middle."""
    import json

    fr = _frontier_module(monkeypatch)
    args = fr.parse_args(["--task", "class", "--methods", "lur", "joint"])
    for job in fr.sweep_jobs(args, tmp_path):
        if job["label"] != "lur":
            continue  # joint's sweep has not run
        erased = 0.97 if job["value"] <= 0.5 else 0.80  # 0.5: the last value erasing ≥ 95 %
        run = Path(job["run_dir"])
        run.mkdir(parents=True)
        result = {"job": job, "erased": erased, "retained": 0.9 + job["value"] / 100}
        (run / "result.json").write_text(json.dumps({**result, "seconds": 1, "job_seconds": 2}))
    fr.dry_run(args, tmp_path)
    listing = capsys.readouterr().out
    assert "0-lur-lambda0.5-seed0" in listing and "0-lur-lambda1-seed0" not in listing
    middle = fr._fmt_value(args.grids["lambda"][len(args.grids["lambda"]) // 2])
    assert f"0-joint-lambda{middle}-seed0" in listing


def test_frontier_task_all_runs_each_task_with_its_own_methods(monkeypatch, tmp_path, capsys):
    fr = _frontier_module(monkeypatch)
    argv = ["--task", "all", "--methods", "uce", "lur", "--output_dir", str(tmp_path)]
    assert set(fr.parse_args(argv, "class").labels) == {"lur"}  # uce has no class task
    assert set(fr.parse_args(argv, "concept").labels) == {"uce", "lur"}
    with pytest.raises(SystemExit):
        fr.parse_args(["--task", "all", "--methods", "lur", "bogus"])
    fr.main([*argv, "--dry_run"])
    listing = capsys.readouterr().out
    assert "# class task" in listing and "# concept task" in listing
    assert "0-uce-" not in listing and "zero-uce-" in listing and "every task: ≈" in listing


def test_frontier_lur_variants_run_lur_with_their_own_flag(monkeypatch, tmp_path):
    """Each variant is lur with one flag changed, swept on lur's λ grid."""
    fr = _frontier_module(monkeypatch)
    args = fr.parse_args(["--task", "concept", "--lur_variants", "--methods", "lur-clip"])
    jobs = fr.sweep_jobs(args, tmp_path)
    assert {j["label"] for j in jobs} == {"lur-clip"}
    assert {j["value"] for j in jobs} == set(fr.LAMBDA["concept"])
    for j in jobs:
        argv = j["argv"]
        assert argv[argv.index("--method") + 1] == "lur"
        assert argv[argv.index("--max_grad_norm") + 1] == "1"
    flags = {label: tuple(flags) for label, (_, flags, _) in fr.LUR_VARIANTS.items()}
    assert len(set(flags.values())) == len(flags)  # no two variants are the same run


# -- lur against each baseline: the target rule ----------------------------------------


def _h2h_module(monkeypatch):
    return _load_benchmark(BENCH / "_head_to_head.py", monkeypatch)


def _h2h_run(label, concept, seed, missed, retained, task="class", n=300, **extra):
    argv = ["--eval_samples_per_class", "50"] if task == "class" else []
    job = {"task": task, "label": label, "concept": concept, "seed": seed, "argv": argv}
    return {"job": job, "ua_missed": missed, "ua_n": n, "retained": retained, **extra}


def test_head_to_head_verdicts_follow_the_interval_rule(monkeypatch):
    """Better on one axis with the other within its interval is a win; one axis each way a
    trade; overlapping on both a tie."""
    h = _h2h_module(monkeypatch)
    ev = {"class": 50, "concept": 40}
    lur = h.axes([_h2h_run("lur", "0", 0, 280, 0.97)], ev)
    same = h.axes([_h2h_run("joint", "0", 0, 284, 0.965)], ev)
    less_erased = h.axes([_h2h_run("joint", "0", 0, 240, 0.97)], ev)
    keeps_less = h.axes([_h2h_run("esd", "0", 0, 299, 0.85)], ev)
    assert h.verdict(lur, same) == "tie"
    assert h.verdict(lur, less_erased) == "win" and h.verdict(less_erased, lur) == "loss"
    assert h.verdict(lur, keeps_less) == "trade"
    # class: the retained interval is the Wilson interval of 9 digits × 50 samples
    lo, hi = lur["retained_interval"]
    assert (lo, hi) == pytest.approx(h.wilson(0.97 * 450, 450))
    assert hi - lo == pytest.approx(0.0319, abs=2e-3)


def test_head_to_head_concept_retained_interval_combines_digits_and_styles(monkeypatch):
    h = _h2h_module(monkeypatch)
    run = _h2h_run("lur", "thick", 0, 90, 0.99, task="concept", other_digits=0.98, other_styles=1.0)
    # a style erased: 10 other digits and 4 other styles, 40 images each
    assert h.retained_parts(run, {"class": 50, "concept": 40}) == [(0.98, 400), (1.0, 160)]
    a = h.axes([run], {"class": 50, "concept": 40})
    half_d = (lambda lo, hi: (hi - lo) / 2)(*h.wilson(0.98 * 400, 400))
    half_s = (lambda lo, hi: (hi - lo) / 2)(*h.wilson(160, 160))
    lo, hi = a["retained_interval"]
    assert (hi - lo) / 2 == pytest.approx((half_d**2 + half_s**2) ** 0.5 / 2)
    assert a["retained"] == pytest.approx(0.99)


def test_head_to_head_compares_only_shared_seeds_and_counts_the_target(monkeypatch):
    """A seed only one method has finished does not count; the target needs wins on two
    thirds of every held-out concept."""
    h = _h2h_module(monkeypatch)
    ev = {"class": 50, "concept": 40}
    concepts = ["0", "3", "5"]
    runs = []
    for c in concepts:
        runs += [_h2h_run("lur", c, 0, 290, 0.97), _h2h_run("joint", c, 0, 200, 0.97)]
    # lur's seed 1 on digit 0 erases nothing; joint has no seed 1, so it is left out
    runs.append(_h2h_run("lur", "0", 1, 0, 0.97))
    out = h.head_to_head(runs, concepts, ev)
    pair = out["lur vs joint"]
    assert pair["per_concept"]["0"]["seeds"] == [0]
    assert pair["counts"]["win"] == 3 and pair["target_met"]
    # with only 2 of 3 concepts compared the target is not yet met, however they went
    partial = h.head_to_head([r for r in runs if r["job"]["concept"] != "5"], concepts, ev)
    assert partial["lur vs joint"]["compared"] == 2 and not partial["lur vs joint"]["target_met"]
    # a seed-free baseline (uce: one run) stands against every seed of lur
    uce = [_h2h_run("uce", c, 0, 200, 0.97) for c in concepts]
    free = h.head_to_head([*runs, *uce], concepts, ev, seed_free={"uce"})
    assert free["lur vs uce"]["per_concept"]["0"]["seeds"] == [0, 1]
    assert h.head_to_head([*runs, *uce], concepts, ev)["lur vs uce"]["per_concept"]["0"][
        "seeds"
    ] == [0]
    md = "\n".join(h.head_to_head_lines(out, concepts))
    assert "| lur vs joint | ▲ | ▲ | ▲ | 3 / 0 / 0 / 0 |" in md
    assert "`lur` meets the target against 1 of 1 baselines." in md


_ORPHAN_PARENT = """
import os, sys, time
sys.path[:0] = [{root!r}, {bench!r}]
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
import frontier
pool = ProcessPoolExecutor(
    1, mp_context=mp.get_context("spawn"), initializer=frontier._worker_init,
    initargs=(os.getpid(),),
)
pool.submit(time.sleep, 0).result()  # the worker is up (its initializer has run)
pool.submit(time.sleep, 300)
open({pid_file!r}, 'w').write(str(next(iter(pool._processes))))
os._exit(0)  # killed, as far as the worker can tell: no shutdown message
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited; only its parent has not reaped it


def test_frontier_workers_exit_when_the_frontier_process_dies(tmp_path):
    """Killing the frontier alone must not leave its workers running queued jobs."""
    import os
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    code = _ORPHAN_PARENT.format(root=str(BENCH.parent), bench=str(BENCH), pid_file=str(pid_file))
    # no pipes: the worker inherits them, and a reader would wait for it as well
    subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
        check=True,
    )
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 30  # the watch polls every 2 s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(pid):
        os.kill(pid, 9)
        raise AssertionError(f"worker {pid} outlived its frontier process by 30 s")


def test_reference_spread_smoke(tmp_path):
    """benchmarks/reference_spread.py: each seed's reference measured by the gap probe, their
    mean and noise floor, and a resist.py run's relearning curve judged budget by budget
    against them (the original stands in for both seeds: the spread is 0)."""
    import json

    table = tmp_path / "table.json"
    run = {"target": "zero", "method": "lur-resist", "erased": 0.97, "kept": 0.98}
    run["relearn"] = {"curve": [[0, 0.0], [1, 0.0]]}  # no point at 2 steps: not judged there
    table.write_text(json.dumps({"rows": [run, {**run, "target": "thick"}]}))
    _bench("reference_spread", "--output_dir", tmp_path / "out", "--runs", table)
    r = _json(tmp_path / "out" / "spread.json")["results"][0]
    assert r["concept"] == "zero" and r["seeds"] == [0, 1] and r["steps"] == [1, 2]
    assert r["each"][0] == r["each"][1] and r["noise_floor"]["avg_gap"] == 0.0
    assert r["mean"]["relearn@2"] == r["each"][0]["relearn@2"]
    [mine] = r["runs"]  # thick's row is another concept's
    assert mine["at_or_below_mean"] == {"1": True, "2": None}
    md = (tmp_path / "out" / "spread.md").read_text()
    assert "| **mean of 2** (noise floor) |" in md and "| `lur-resist` (table.json) |" in md
    assert "back no faster than the mean at 1 of 2 budgets" in md
    assert (tmp_path / "out" / "spread.png").stat().st_size > 0


def test_resist_smoke(tmp_path):
    """benchmarks/resist.py: erase, relearn and benign attacks with a reference and the check
    judge, one row per method with both curves and the judges' disagreement."""
    _bench("resist", "--output_dir", tmp_path)
    rows = _json(tmp_path / "table.json")["rows"]
    assert [(r["target"], r["method"]) for r in rows] == [
        ("7", "lur-resist"),
        ("zero", "lur-resist"),
    ]
    for r in rows:
        for attack in ("relearn", "benign"):
            a = r[attack]
            assert [s for s, _ in a["curve"]] == [0, 1, 2] == [s for s, _ in a["reference"]]
            if r["target"] == "7":  # the digits have a second judge; the styles world has not
                assert 0 <= a["check_max_disagreement"] <= 1
        assert r["trained_steps"] == 2 and r["stop_reason"] == "fixed budget"
        assert 0 <= r["erased"] <= 1 and 0 <= r["kept"] <= 1
    assert 0 <= rows[0]["check_judge_erased"] <= 1
    assert "lur-resist" in (tmp_path / "table.md").read_text()


def test_resist_passes_both_references_and_prints_the_noise_floor(monkeypatch):
    """--noise_floor: each run gets the seed-0 and seed-1 references (--reference_seeds K:
    seeds 0..K-1), and the table prints the references' Avg. Gap beside the run's."""
    resist = _load_benchmark(BENCH / "resist.py", monkeypatch)
    args = resist.parse_args(["--digits", "6", "--noise_floor"])
    import erase.reference

    # the folder names, not the 25-minute trainings: what is checked is which seeds are asked for
    monkeypatch.setattr(
        erase.reference, "digits_reference", lambda classes, seed: f"ref-{classes[0]}-seed{seed}"
    )
    assert resist.gap_references("class", "6", args) == ["ref-6-seed0", "ref-6-seed1"]
    args = resist.parse_args(["--digits", "6"])
    assert resist.gap_references("class", "6", args) == ["ref-6-seed0"]
    args = resist.parse_args(["--digits", "6", "--reference_seeds", "3"])
    assert resist.gap_references("class", "6", args) == [f"ref-6-seed{k}" for k in range(3)]
    metrics = {
        "unlearning_accuracy": 0.96,
        "retained_accuracy": 0.97,
        "reference_gap": {
            "gap": {"avg_gap": 0.153, "avg_shortfall": 0.121},
            "noise_floor": {"avg_gap": 0.041},
        },
    }
    r = resist.row("6", "lur", metrics, {}, {})
    assert r["avg_gap"] == 0.153 and r["noise_floor"] == 0.041
    assert "| 0.153 (0.041) | 0.121 |" in resist.table([r])
    # the cost column: each method's erasure time over lur's on the same target
    rows = [
        resist.row("6", m, {**metrics, "erasure_seconds": t}, {}, {})
        for m, t in (("lur", 100.0), ("lur-resist", 260.0))
    ]
    rows.append(resist.row("7", "lur-resist", {**metrics, "erasure_seconds": 50.0}, {}, {}))
    rows = resist.with_lur_ratio(rows)
    assert [r["erase_x_lur"] for r in rows] == [1.0, 2.6, None]
    text = resist.table(rows)
    assert "| 260 (2.60) |" in text and "| 50 |" in text
    # the steps column says when a floor (--min_train_steps) kept a run training past its target
    stop = {"reason": "target", "step": 200, "first_met_step": 25, "rule": {"min_steps": 200}}
    assert resist.row("6", "lur-resist", {**metrics, "stopping": stop}, {}, {})["stop_reason"] == (
        "target at 25, floor"
    )
    assert resist.stop_reason({**stop, "first_met_step": 200}) == "target"
    # met first at the floor, stopped later by a failed confirmation: not the floor's doing
    assert resist.stop_reason({**stop, "step": 325, "first_met_step": 200}) == "target"
    assert resist.stop_reason("off: a fixed budget") == "fixed budget"


def test_resist_renders_a_finished_table_with_the_attackers_best_within_each_budget(
    monkeypatch, capsys
):
    """``--render`` reprints a committed table.json with today's columns and runs nothing:
    on "striped" the never-learned mean curve dips (58/14/50), and the running maximum reads it
    at 58 for every budget; older tables name their target "digit"."""
    resist = _load_benchmark(BENCH / "resist.py", monkeypatch)
    rows = resist.main(["--render", str(BENCH / "resist" / "concept-striped-two-references.json")])
    text = capsys.readouterr().out
    assert [r["method"] for r in rows] == ["joint", "lur-resist"]
    assert "| 0/0/12 (58/14/50) | 0/0/12 (58/58/58) under |" in text
    assert "| 100/100/100 (58/14/50) | 100/100/100 (58/58/58) over at 5/10/20 |" in text
    resist.main(["--render", str(BENCH / "resist" / "digit-3.json")])
    assert "| 3 | esd |" in capsys.readouterr().out


def test_resist_reads_the_relearn_curves_from_the_gap_probe_and_runs_the_other_attacks(
    monkeypatch, tmp_path
):
    """A run measured against its reference already relearned it (and the reference) with the
    relearn attack's settings and both judges: resist.py reads those curves from metrics.json
    and runs only the attacks the probe did not; with other settings it attacks afresh."""
    resist = _load_benchmark(BENCH / "resist.py", monkeypatch)
    calls = []

    def fake_attack(model, out, kind, name, attack_name, args):
        calls.append((Path(model).name, attack_name))
        return {"curve": [{"steps": 0, "share": 0.0}, {"steps": 5, "share": 0.1}]}

    monkeypatch.setattr(resist, "attack", fake_attack)
    args = resist.parse_args(["--digits", "6"])
    settings = {"forget_class": 6, "steps": [5, 10, 20], "n_images": 32, "lr": 1e-4}
    settings.update(batch=32, samples=50, seed=0, check_judge="digits-svm")

    def measures(shares, checks):
        m = {"erased": 1.0, "kept": 0.97}
        for s, v, c in zip((0, 5, 10, 20), shares, checks):
            m.update({f"relearn@{s}": v, f"check@{s}": c})
        return m

    run = measures([0.0, 0.2, 0.6, 0.9], [0.02, 0.3, 0.6, 0.8])
    ref = measures([0.0, 0.3, 0.5, 0.7], [0.0, 0.3, 0.5, 0.74])
    metrics = {
        "unlearning_accuracy": 1.0,
        "retained_accuracy": 0.97,
        "reference_gap": {"run": run, "reference": ref, "relearning": settings},
    }
    run_dir, ref_attacks = tmp_path / "digit-6" / "lur-resist", {}
    attacks = resist.attacks_of(run_dir, metrics, "class", "6", args, "REF", ref_attacks)
    assert calls == [("lur-resist", "benign"), ("REF", "benign")]  # relearn: from the probe
    relearn = attacks["relearn"]
    assert [(p["steps"], p["share"]) for p in relearn["curve"]] == [
        (0, 0.0),
        (5, 0.2),
        (10, 0.6),
        (20, 0.9),
    ]
    assert relearn["steps_to_half"] == pytest.approx(5 + (0.5 - 0.2) / 0.4 * 5)
    assert relearn["check_max_disagreement"] == pytest.approx(0.1)
    assert ref_attacks["relearn"]["steps_to_half"] == pytest.approx(10.0)
    r = resist.row("6", "lur-resist", metrics, attacks, ref_attacks)
    text = resist.table([r])
    assert "| 20/60/90 (30/50/70) | 20/60/90 (30/50/70) over at 10/20 | 8.8 (10.0) |" in text
    # another sample count than the probe's: the attack runs for the run and its reference
    calls.clear()
    args = resist.parse_args(["--digits", "6", "--samples", "20"])
    resist.attacks_of(run_dir, metrics, "class", "6", args, "REF", {})
    assert calls == [("lur-resist", "relearn"), ("REF", "relearn")] + [
        ("lur-resist", "benign"),
        ("REF", "benign"),
    ]


def test_defaults_smoke(monkeypatch, tmp_path):
    """benchmarks/defaults.py: real runs of the concept script with nothing but the method and
    seed (smoke-sized), their new-image share, both judges kept in result.json, the pooled ratio
    against joint's, and a second call that reads the runs back instead of training again."""
    mod = _load_benchmark(BENCH / "defaults.py", monkeypatch)
    argv = ["--task", "concept", "--concepts", "striped", "--methods", "lur", "joint"]
    argv += ["--smoke", "--jobs", "1", "--output_dir", str(tmp_path)]
    assert mod.main(argv) == 0
    out = tmp_path / "concept"
    runs = {
        m: json.loads((out / f"striped-{m}-seed0" / "result.json").read_text())
        for m in ("lur", "joint")
    }
    for m, r in runs.items():
        assert r["job"]["argv"][:4] == ["--concept", "striped", "--method", m]
        assert r["ua_n"] == 4 and r["erased"] == r["ua_missed"] / 4
        metrics = json.loads((out / f"striped-{m}-seed0" / "metrics.json").read_text())
        assert r["eval_erased"] == 1 - metrics["forget_style_accuracy_after"]
        assert r["check_erased"] == metrics["check_judge"]["unlearning_accuracy"]
        assert r["stop_reason"] == metrics["stopping"]["reason"]
    record = json.loads((out / "defaults.json").read_text())
    lur = record["summary"]["lur"]
    assert lur["steps_vs_joint"] == runs["lur"]["steps"] / runs["joint"]["steps"]
    assert lur["seconds_vs_joint"] == runs["lur"]["seconds"] / runs["joint"]["seconds"]
    table = (out / "defaults.md").read_text()
    assert table.count("| striped | 0 |") == 2 and "| `lur` |" in table

    weights = sorted((out / "striped-lur-seed0").rglob("*.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    assert weights and mod.main(argv) == 0  # resumed: nothing retrained
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert (out / "defaults.md").read_text() == table


def test_frontier_dry_run_counts_the_chosen_lur_form_in_the_held_out_runs(monkeypatch, capsys):
    """Where every form has run (the committed ones), the listing and its estimate hold the
    held-out runs of the form the rule chose, as the real run adds them."""
    fr = _frontier_module(monkeypatch)
    out = BENCH / "frontier-equal"
    argv = ["--task", "class", "--equal_erasure", "0.95", "--held_out", "8", "--seeds", "0"]
    args = fr.parse_args([*argv, "--output_dir", str(out)])
    fr.dry_run(args, out / "class")
    listing = capsys.readouterr().out
    assert "8-lur-retain-first-lambda2-seed0" in listing and "8-lur-lambda1-seed0" in listing
    assert "--meta_order forget_first" in listing  # the label lur stays the paper's order
