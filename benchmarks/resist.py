#!/usr/bin/env python
"""Does the erasure stay gone? Each method erased to the stopping target, attacked, and set
against the model retrained without the digit (the floor).

    python benchmarks/resist.py --digits 2 3 --output_dir runs/resist

Per digit K, the reference — the digits DDPM retrained without K
(``erase.reference.digits_reference``: trained into the cache on first use, 15–30 CPU-minutes)
— is attacked once; then per method ``scripts/erase_class.py --forget_class K --method M
--reference REF`` with every other default (the stopping rule: 95 % erased by the digits
classifier, cap 4 × the budget; the Avg. Gap to the reference in metrics.json), and each model
is attacked twice with ``eval/attack.py``: ``relearn`` (32 real images of K, AdamW 1e-4, batch
32, after 5/10/20 steps) and ``benign`` (the other digits' images, after 5/10/20/50 steps),
with ``--check_judge digits-svm``: a second judge of another model family on every curve point.
Finished runs and attacks are reused, so the benchmark resumes. Writes ``table.md`` and
``table.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scripts import CLASS_SMOKE, SMOKE_HELP, load_script, machine_record  # noqa: E402

METHODS = ["joint", "lur", "lur-resist"]
RELEARN_STEPS = [5, 10, 20]
BENIGN_STEPS = [5, 10, 20, 50]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--digits", type=int, nargs="+", default=[2, 3], help="2, 4 tune; others held out"
    )
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=50, help="class samples judged per point")
    p.add_argument("--attacks", nargs="+", default=["relearn", "benign"])
    p.add_argument("--output_dir", default="runs/resist")
    p.add_argument(
        "--erase_flags", default="", help="extra erase_class flags, e.g. '--max_train_steps 4'"
    )
    p.add_argument(
        "--attack_flags", default="", help="extra attack flags, e.g. '--num_inference_steps 4'"
    )
    p.add_argument("--reference", default=None, help="a reference folder for every digit (tests)")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = p.parse_args(argv)
    args.relearn_steps, args.benign_steps, args.gap = RELEARN_STEPS, BENIGN_STEPS, True
    if args.smoke:  # the original stands in for the reference: the plumbing, not the floor
        args.gap = False  # no Avg. Gap: its probe has fixed, full-size settings (minutes)
        args.digits, args.methods, args.samples = [7], ["lur-resist"], 2
        args.reference = str(ROOT / "erase" / "assets" / "digits_ddpm")
        args.erase_flags = " ".join([*CLASS_SMOKE, "--stop_at_erased", "off"])
        args.attack_flags = "--num_inference_steps 2 --relearn_images 2 --relearn_batch 2"
        args.relearn_steps, args.benign_steps = [1, 2], [1, 2]
    return args


def erase(run_dir: Path, digit: int, method: str, reference: str, args) -> dict:
    if not (run_dir / ".complete").exists():
        flags = ["--forget_class", str(digit), "--method", method, "--seed", str(args.seed)]
        flags += (["--reference", reference] if args.gap else []) + args.erase_flags.split()
        flags += ["--output_dir", str(run_dir), "--overwrite"]
        load_script("scripts/erase_class.py").main(flags)
    return json.loads((run_dir / "metrics.json").read_text())


def attack(model: str, out: Path, digit: int, name: str, args) -> dict:
    from robustness import attack_once

    steps = args.relearn_steps if name == "relearn" else args.benign_steps
    flags = ["--forget_class", str(digit), "--attack", name]
    flags += ["--relearn_steps", *map(str, steps), "--samples", str(args.samples)]
    flags += ["--seed", str(args.seed), "--check_judge", "digits-svm"]
    return attack_once(model, out, [*flags, *args.attack_flags.split()])


def row(digit: int, method: str, metrics: dict, attacks: dict, ref_attacks: dict) -> dict:
    """One table row from a run's metrics.json, its attack.json files and the reference's."""
    stopping = metrics.get("stopping")
    gap = (metrics.get("reference_gap") or {}).get("gap", {})
    r = {
        "digit": digit,
        "method": method,
        "erased": metrics.get("unlearning_accuracy"),
        "kept": metrics.get("retained_accuracy"),
        "kept_before": metrics.get("before", {}).get("retained_accuracy"),
        "trained_steps": metrics.get("trained_steps"),
        "stop_reason": stopping.get("reason") if isinstance(stopping, dict) else "fixed budget",
        "erase_seconds": metrics.get("erasure_seconds"),
        "avg_gap": gap.get("avg_gap"),
        "check_judge_erased": (metrics.get("check_judge") or {}).get("unlearning_accuracy"),
    }
    for name, a in attacks.items():
        ref = ref_attacks[name]
        r[name] = {
            "curve": [[p["steps"], p["share"]] for p in a["curve"]],
            "check_curve": [[p["steps"], p.get("check_share")] for p in a["curve"]],
            "reference": [[p["steps"], p["share"]] for p in ref["curve"]],
            "steps_to_half": a.get("steps_to_half"),
            "reference_steps_to_half": ref.get("steps_to_half"),
            "check_max_disagreement": max(
                d
                for d in (a.get("check_max_disagreement"), ref.get("check_max_disagreement"))
                if d is not None
            ),
        }
    return r


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def _curve(c: dict, key: str = "curve") -> str:
    return "/".join(_pct(v) for s, v in c[key] if s > 0)


def _gap(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _half(x) -> str:
    return "never" if x is None else f"{x:.1f}"


def _steps(rows: list[dict], attack: str) -> str:
    curves = [r[attack]["curve"] for r in rows if r.get(attack)]
    return "/".join(str(s) for s, _ in curves[0] if s > 0) if curves else ""


def table(rows: list[dict]) -> str:
    head = (
        f"| digit | method | erased % (SVM) | kept % | Avg. Gap | steps (why) | erase s "
        f"| relearn back % "
        f"s={_steps(rows, 'relearn')} (reference) | steps to 50 % back (ref) | benign back % "
        f"s={_steps(rows, 'benign')} (ref) | judges disagree ≤ |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        rl, bn = r.get("relearn"), r.get("benign")
        dis = [a["check_max_disagreement"] for a in (rl, bn) if a]
        dis = [d for d in dis if d is not None]
        lines.append(
            f"| {r['digit']} | {r['method']} | {_pct(r['erased'])} ({_pct(r['check_judge_erased'])}) "
            f"| {_pct(r['kept'])} | {_gap(r['avg_gap'])} "
            f"| {r['trained_steps']} ({r['stop_reason'] or '-'}) "
            f"| {r['erase_seconds'] and round(r['erase_seconds'])} "
            + (f"| {_curve(rl)} ({_curve(rl, 'reference')}) " if rl else "| – ")
            + (
                f"| {_half(rl['steps_to_half'])} ({_half(rl['reference_steps_to_half'])}) "
                if rl
                else "| – "
            )
            + (f"| {_curve(bn)} ({_curve(bn, 'reference')}) " if bn else "| – ")
            + f"| {_pct(max(dis)) if dis else '–'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out = Path(args.output_dir)
    rows = []
    for digit in args.digits:
        from erase.reference import digits_reference

        reference = args.reference or str(digits_reference([digit], 0))
        ref_dir = out / f"digit-{digit}" / "reference"
        ref_attacks = {
            a: attack(reference, ref_dir / f"attack-{a}", digit, a, args) for a in args.attacks
        }
        for method in args.methods:
            run_dir = out / f"digit-{digit}" / method
            metrics = erase(run_dir, digit, method, reference, args)
            attacks = {
                a: attack(str(run_dir), run_dir / f"attack-{a}", digit, a, args)
                for a in args.attacks
            }
            rows.append(row(digit, method, metrics, attacks, ref_attacks))
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(
        json.dumps({**machine_record("resist.py"), "rows": rows}, indent=2)
    )
    (out / "table.md").write_text(table(rows) + "\n")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
