#!/usr/bin/env python
"""Choose the look-ahead step α on a *tuning* digit (not the one the tables report on).

    python benchmarks/sweep_alpha.py --forget_class 2 --alphas 1 2 3 --output_dir runs/sweep-d2

α is given in multiples of the learning rate: with ``--meta_precondition adam`` (default) the
look-ahead is then that many Adam-sized steps. ``joint`` is the α → 0 limit and runs alongside.
Writes ``sweep.md`` / ``sweep.json`` with UA, retained accuracy, digits-FID and the mean
gradient cosine at θ and at θ'.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _scripts import CLASS_SMOKE, SMOKE_HELP, load_script  # noqa: E402  (benchmarks/ is on the path when run)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--forget_class", type=int, default=2)
    p.add_argument("--alphas", type=float, nargs="+", default=[1, 2, 3])
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output_dir", default="runs/sweep")
    p.add_argument("--skip_joint", action="store_true", help="only the lur configurations")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + " (α = 1 and joint)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args(argv)
    if args.smoke:
        args.alphas = [1.0]
        args.extra = CLASS_SMOKE + args.extra
    return args


def _mean(log, key):
    xs = [r[key] for r in log if key in r]
    return statistics.mean(xs) if xs else float("nan")


def main(argv=None):
    args = parse_args(argv)
    from erase.io import atomic_write_json, atomic_write_text

    run = load_script("scripts/erase_class.py").main
    out = Path(args.output_dir)
    configs = [] if args.skip_joint else [("joint", None)]
    configs += [("lur", a) for a in args.alphas]
    rows = []
    for method, a in configs:
        name = method if a is None else f"lur-alpha{a:g}"
        run_dir = out / name
        flags = [
            "--forget_class",
            str(args.forget_class),
            "--method",
            method,
            "--seed",
            str(args.seed),
            "--learning_rate",
            str(args.learning_rate),
            "--stop_at_erased",
            "off",
            "--output_dir",
            str(run_dir),
            "--overwrite",
            *args.extra,
        ]
        if a is not None:
            flags += ["--inner_lr", str(a * args.learning_rate)]
        if not (run_dir / ".complete").exists():
            run(flags)
        m = json.loads((run_dir / "metrics.json").read_text())
        log = json.loads((run_dir / "step_log.json").read_text())
        rows.append(
            {
                "config": name,
                "alpha_in_lr_units": a,
                "ua": m["unlearning_accuracy"],
                "retained": m["retained_accuracy"],
                "fid": m["fid_remaining"],
                "before": m["before"],
                # joint logs its one conflict (at θ) as "cos"; lur logs θ' as "cos"
                "cos_at_lookahead": float("nan") if a is None else _mean(log, "cos"),
                "cos_at_theta": _mean(log, "cos" if a is None else "cos_at_theta"),
                "seconds": m["erasure_seconds"],
            }
        )
        r = rows[-1]
        print(
            f"{name}: UA {r['ua']:.3f} retained {r['retained']:.3f} FID {r['fid']:.2f} "
            f"cos θ {r['cos_at_theta']:.2f} cos θ' {r['cos_at_lookahead']:.2f}",
            flush=True,
        )
    b = rows[0]["before"]  # the same original model for every row
    lines = [
        f"α sweep on the tuning digit {args.forget_class} (seed {args.seed}); original: UA "
        f"{100 * b['unlearning_accuracy']:.1f} %, retained {100 * b['retained_accuracy']:.1f} %, "
        f"digits-FID {b['fid_remaining']:.2f}.",
        "",
        "| config | α (× lr) | UA (%) | retained (%) | digits-FID | mean cos at θ | "
        "mean cos at θ' | time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = "–" if r["alpha_in_lr_units"] is None else f"{r['alpha_in_lr_units']:g}"
        lines.append(
            f"| {r['config']} | {a} | {100 * r['ua']:.1f} | {100 * r['retained']:.1f} | "
            f"{r['fid']:.2f} | {r['cos_at_theta']:.2f} | {r['cos_at_lookahead']:.2f} | "
            f"{r['seconds']:.0f} |"
        )
    md = "\n".join(lines) + "\n"
    atomic_write_text(out / "sweep.md", md)
    atomic_write_json(out / "sweep.json", rows)
    print(md)


if __name__ == "__main__":
    main()
