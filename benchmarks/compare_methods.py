#!/usr/bin/env python
"""Every class-erasure method on the same digit, budget and seeds: one comparison table.

    python benchmarks/compare_methods.py --forget_class 7 --seeds 0 1 2 --output_dir runs/compare

Runs ``scripts/erase_class.py`` once per (method, seed) with identical flags, then writes
``table.md`` and ``table.json`` (mean ± std over seeds of unlearning accuracy, retained
accuracy, digits-FID of the remaining classes and the erasure's wall time), with the
original model's numbers as the first row. Hyper-parameters are the scripts' defaults, which
were chosen on a *different* digit (see ``--tune_class`` in the README), never on this one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scripts import CLASS_SMOKE, SMOKE_HELP, load_script  # noqa: E402  (benchmarks/ is on the path when run)

METHODS = ["lur", "joint", "pcgrad", "salun", "ga", "esd"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--forget_class", type=int, default=7)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--output_dir", default="runs/compare")
    p.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="flags passed to every erase_class.py run (after --extra)",
    )
    p.add_argument(
        "--attacks",
        nargs="*",
        default=[],
        choices=["relearn"],
        help="also attack every run (eval/attack.py, its defaults; RUN/attack-A) and add "
        "pre-ASR → ASR and the relearning curve to the table",
    )
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + " (lur, joint; seed 0)")
    args = p.parse_args(argv)
    if args.smoke:
        args.methods, args.seeds = ["lur", "joint"], [0]
        args.extra = CLASS_SMOKE + args.extra
    return args


def _fmt(xs, pct=False):
    xs = [x for x in xs if x == x]
    if not xs:
        return "–"
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * s:.1f}" if pct else f"{m:.2f} ± {s:.2f}"


def summarize(
    rows: dict, forget_class: int, seeds, attacks: dict | None = None
) -> tuple[str, dict]:
    """``attacks``: method → attack → [attack.json per seed] (optional robustness columns)."""
    from robustness import attack_cell, summarize_attacks

    attacks = attacks or {}
    names = list(dict.fromkeys(a for per in attacks.values() for a in per))
    table = {}
    lines = [
        f"Erasing digit {forget_class} from the embedded digits DDPM; mean ± std over seeds "
        f"{', '.join(map(str, seeds))}.",
        "",
        "| method | UA (%) ↑ | retained acc. (%) ↑ | digits-FID remaining ↓ | erasure time (s) |"
        + "".join(f" {a}: pre-ASR → ASR (%) |" for a in names),
        "|---|---|---|---|---|" + "---|" * len(names),
    ]
    first = next(iter(rows.values()))[0]
    before, ev = first["before"], first.get("evaluation", {})
    lines.append(
        f"| original | {100 * before['unlearning_accuracy']:.1f} | "
        f"{100 * before['retained_accuracy']:.1f} | {before['fid_remaining']:.2f} | – |"
        + " – |"
        * len(names)
    )
    for method, runs in rows.items():
        ua = [r["unlearning_accuracy"] for r in runs]
        ra = [r["retained_accuracy"] for r in runs]
        fid = [r["fid_remaining"] for r in runs]
        t = [r["erasure_seconds"] for r in runs]
        table[method] = {
            "unlearning_accuracy": ua,
            "retained_accuracy": ra,
            "fid_remaining": fid,
            "erasure_seconds": t,
        }
        robust = {a: summarize_attacks(r) for a, r in attacks.get(method, {}).items()}
        if robust:
            table[method]["attacks"] = robust
        lines.append(
            f"| {method} | {_fmt(ua, True)} | {_fmt(ra, True)} | {_fmt(fid)} | {_fmt(t)} |"
            + "".join(f" {attack_cell(robust[a]) if a in robust else '–'} |" for a in names)
        )
    table["original"] = {
        k: before[k] for k in ("unlearning_accuracy", "retained_accuracy", "fid_remaining")
    }
    lines += [
        "",
        "UA = share of forget-class samples the independent classifier does *not* "
        "recognise as the class; retained accuracy = its accuracy on the other nine digits; "
        "digits-FID = Fréchet distance in the classifier's features against the real digits "
        f"of the remaining classes ({ev.get('samples_per_class')} samples per class, guidance "
        f"{ev.get('guidance_scale')}, DDIM {ev.get('num_inference_steps')} steps). Erasure time "
        "is the training loop's wall time on this machine.",
    ]
    return "\n".join(lines) + "\n", table


def main(argv=None):
    args = parse_args(argv)
    from erase.io import atomic_write_json, atomic_write_text

    out = Path(args.output_dir)
    run = load_script("scripts/erase_class.py").main
    rows: dict[str, list] = {}
    attacks: dict[str, dict] = {}
    for method in args.methods:
        for seed in args.seeds:
            run_dir = out / f"{method}-seed{seed}"
            if not (run_dir / ".complete").exists():
                run(
                    [
                        "--forget_class",
                        str(args.forget_class),
                        "--method",
                        method,
                        "--seed",
                        str(seed),
                        "--output_dir",
                        str(run_dir),
                        "--overwrite",
                        "--stop_at_erased",
                        "off",  # methods compared at the same fixed budget
                        *args.extra,
                    ]
                )
            rows.setdefault(method, []).append(json.loads((run_dir / "metrics.json").read_text()))
            for attack in args.attacks:
                from robustness import attack_run

                res = attack_run(
                    run_dir, attack, ["--forget_class", str(args.forget_class)], seed, args.smoke
                )
                attacks.setdefault(method, {}).setdefault(attack, []).append(res)
            m = rows[method][-1]
            print(
                f"{method} seed {seed}: UA {m['unlearning_accuracy']:.3f} retained "
                f"{m['retained_accuracy']:.3f} FID {m['fid_remaining']:.2f} "
                f"time {m['erasure_seconds']:.0f}s",
                flush=True,
            )
    md, table = summarize(rows, args.forget_class, args.seeds, attacks)
    atomic_write_text(out / "table.md", md)
    atomic_write_json(
        out / "table.json",
        {
            "forget_class": args.forget_class,
            "seeds": args.seeds,
            "extra": args.extra,
            "methods": table,
        },
    )
    print(md)


if __name__ == "__main__":
    main()
