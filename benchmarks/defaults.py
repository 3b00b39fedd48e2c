#!/usr/bin/env python
"""Does the default erasure erase? Every held-out concept, every default, measured.

    python benchmarks/defaults.py --task all --methods lur joint --seeds 0 --jobs 2

Each run is ``scripts/erase_class.py --forget_class K`` or ``scripts/erase_concept.py --concept
C`` with nothing but ``--method``, ``--seed`` and the output folder (and a shared cache of the
concept task's generated training images), so it measures what a user gets: the default form
and weight of the method, and the default stopping rule (95 % erased by the world's judge,
checked every 25 steps, capped at 4× the budget). Then, as the comparisons do, 300 new images
of the concept judged by the run's own judge (``--ua_samples``), because the stopping check and
the evaluation judge the same few seeds every time.

The table (``OUTPUT_DIR/TASK/defaults.{md,json}``) gives per concept and method the steps and
why the run stopped, the erased share of the new images with its 95 % interval, the run's own
evaluation beside the second judge's (a model of another family: SVMs on raw pixels), the kept
accuracy and the seconds; under it, the issue's targets: how many concepts each method erased
to 95 %, where the two judges differ by more than 5 points, and each method's steps and seconds
against ``joint``'s, pooled over the concepts (a run that hit the cap counts with the cap).
Finished runs (their ``result.json``) are read back, so it resumes; ``--report_only`` redraws.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _scripts import CLASS_SMOKE, CONCEPT_SMOKE, SMOKE_HELP, machine_record  # noqa: E402
from frontier import HELD_OUT, TASKS, Pool, numbers, run_all  # noqa: E402

from erase.metrics.intervals import wilson  # noqa: E402

TARGET = 0.95  # the stopping rule's default target, which the table checks against
AGREE = 0.05  # the "an independent judge agrees within 5 points"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=[*TASKS, "all"], default="all")
    p.add_argument("--methods", nargs="+", default=["lur", "joint"])
    p.add_argument("--concepts", nargs="+", default=None, help="default: the held-out ones")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--ua_samples", type=int, default=300, help="new images judged per run")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--output_dir", default="benchmarks/defaults")
    p.add_argument("--report_only", action="store_true", help="redraw from finished runs")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="passed to every run")
    return p.parse_args(argv)


def make_jobs(args, task: str) -> list[dict]:
    out = Path(args.output_dir) / task
    jobs = []
    for seed in args.seeds:
        for concept in args.concepts or HELD_OUT[task]:
            for method in args.methods:
                run_dir = out / f"{concept}-{method}-seed{seed}"
                target = ["--forget_class", concept] if task == "class" else ["--concept", concept]
                argv = [*target, "--method", method, "--seed", str(seed)]
                argv += ["--output_dir", str(run_dir), "--overwrite", *args.extra]
                if args.smoke:
                    argv += CLASS_SMOKE if task == "class" else CONCEPT_SMOKE
                if task == "concept":
                    argv += ["--cache_dir", str(out / "cache")]
                jobs.append(
                    {
                        "task": task,
                        "phase": "defaults",
                        "label": method,
                        "concept": concept,
                        "seed": seed,
                        "run_dir": str(run_dir),
                        "argv": argv,
                        "ua_samples": 4 if args.smoke else args.ua_samples,
                        "relearn_steps": 0,
                        "smoke": args.smoke,
                    }
                )
    return jobs


def with_judges(result: dict) -> dict:
    """The run's own evaluation, the second judge's and why it stopped, kept in result.json
    (a checkout holds only that file)."""
    run_dir = Path(result["job"]["run_dir"])
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():  # a checkout: result.json alone
        return result
    from erase.io import atomic_write_json

    m = json.loads(metrics_path.read_text())
    stop = m.get("stopping") or {}
    fresh = {
        "eval_erased": numbers(result["job"]["task"], m)["erased"],  # the run's own evaluation
        "check_erased": (m.get("check_judge") or {}).get("unlearning_accuracy"),
        "stop_reason": stop.get("reason"),
        "cap": stop.get("cap"),
    }
    if any(result.get(k) != v for k, v in fresh.items()):
        result.update(fresh)
        atomic_write_json(run_dir / "result.json", result)
    return result


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def summary(results: list[dict], methods: list[str]) -> dict:
    """Per method: concepts erased to the target (new images), judges apart by more than
    ``AGREE``, and pooled steps and seconds against joint's on the concepts both ran."""
    by = {(r["job"]["label"], r["job"]["concept"], r["job"]["seed"]): r for r in results}
    out = {}
    for m in methods:
        rows = [r for (mm, _, _), r in by.items() if mm == m]
        erased = [r for r in rows if r["erased"] >= TARGET]
        apart = [
            r["job"]["concept"]
            for r in rows
            if r.get("check_erased") is not None
            and abs(r["check_erased"] - r["eval_erased"]) > AGREE
        ]
        s = {"runs": len(rows), "erased_to_target": len(erased), "judges_apart": apart}
        pairs = [(r, by.get(("joint", *k[1:]))) for k, r in by.items() if k[0] == m]
        pairs = [(a, b) for a, b in pairs if b is not None]
        if pairs and m != "joint":
            s["steps_vs_joint"] = sum(a["steps"] for a, _ in pairs) / sum(
                b["steps"] for _, b in pairs
            )
            s["seconds_vs_joint"] = sum(a["seconds"] for a, _ in pairs) / sum(
                b["seconds"] for _, b in pairs
            )
            s["pairs"] = len(pairs)
        out[m] = s
    return out


def report(task: str, results: list[dict], methods: list[str], out: Path) -> str:
    """defaults.md and defaults.json of one task."""
    from erase.io import atomic_write_json, atomic_write_text

    results = sorted(results, key=lambda r: (r["job"]["seed"], r["job"]["concept"]))
    lines = [
        f"# Every default, every held-out concept ({task} task)",
        "",
        "Each run: the erase script with only `--method` and `--seed` (the default stopping rule: "
        f"{TARGET:.0%} erased by the run's judge, cap 4x the budget). Erased: the share of new "
        "images the run never saw, with its 95 % interval; eval: the run's own evaluation, with the "
        "second judge (SVMs on raw pixels) in parentheses; kept: the other concepts' accuracy.",
        "",
        "| concept | seed | method | steps (why) | erased, new images % (95 % interval) "
        "| eval % (second judge) | kept % | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        j = r["job"]
        n = r.get("ua_n") or 0
        lo, hi = wilson(r.get("ua_missed", 0), n) if n else (None, None)
        lines.append(
            f"| {j['concept']} | {j['seed']} | `{j['label']}` | {r.get('steps')} "
            f"({r.get('stop_reason') or '?'}) | {_pct(r['erased'])} ({_pct(lo)}-{_pct(hi)}) "
            f"| {_pct(r.get('eval_erased'))} ({_pct(r.get('check_erased'))}) "
            f"| {_pct(r['retained'])} | {r['seconds']:.0f} |"
        )
    s = summary(results, methods)
    lines += [
        "",
        "| method | erased to the target | judges > 5 points apart | steps, seconds "
        "against `joint`'s (pooled) |",
        "|---|---|---|---|",
    ]
    for m, v in s.items():
        ratio = (
            f"{v['steps_vs_joint']:.2f}×, {v['seconds_vs_joint']:.2f}× ({v['pairs']} concepts)"
            if "steps_vs_joint" in v
            else "–"
        )
        apart = ", ".join(v["judges_apart"]) or "none"
        lines.append(f"| `{m}` | {v['erased_to_target']} of {v['runs']} | {apart} | {ratio} |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "defaults.md", text)
    record = {"task": task, "summary": s, "runs": results, "machine": machine_record("defaults.py")}
    atomic_write_json(out / "defaults.json", record)
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    pool = None if args.report_only else Pool(args.jobs)
    failed = False
    try:
        for task in TASKS if args.task == "all" else [args.task]:
            results = run_all(make_jobs(args, task), pool)
            failed |= any("error" in r for r in results)
            done = [with_judges(r) for r in results if "error" not in r]
            if done:
                print(report(task, done, args.methods, Path(args.output_dir) / task), flush=True)
    finally:
        if pool is not None:
            pool.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
