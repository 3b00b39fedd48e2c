#!/usr/bin/env python
"""Is the concept really gone? Every method erased on the same held-out digit, then attacked.

    python benchmarks/robustness.py --output_dir runs/robustness

Class part: ``scripts/erase_class.py`` (its defaults: 150 steps) per method on
``--forget_class``, then ``eval/attack.py RUN --forget_class K --attack relearn`` (32 real
images of the digit, the judged share after 0/5/10/20 fine-tuning steps). Concept part:
``scripts/erase_concept.py`` (its defaults: 100 steps) per method on ``--concept``, then each
of ``--attacks`` (pre-ASR → ASR). The original model is attacked too (first row). Writes
``table.md`` and ``table.json``; finished runs and attacks are reused, so an interrupted
benchmark resumes. A method may carry flags of the erase script: ``lur-relearn+relearn_weight=3``
runs ``--method lur-relearn --relearn_weight 3`` (its own row).

``--only class`` / ``--only concept`` run one part (two processes can share the work); the
table is written from whatever runs exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scripts import CLASS_SMOKE, CONCEPT_SMOKE, SMOKE_HELP, load_script, machine_record  # noqa: E402  (benchmarks/ is on the path when run)

CLASS_METHODS = ["joint", "esd", "lur", "lur-relearn"]
CONCEPT_METHODS = ["joint", "esd", "lur", "lur-adv", "lur-relearn"]
ATTACKS = ["unlearndiff", "soft_prompt", "relearn"]
RESISTING = ("lur-relearn", "lur-adv")
BASELINES = ("joint", "esd")

ATTACK_SMOKE = ["--iterations", "1", "--timesteps", "1", "--num_inference_steps", "2"]
RELEARN_SMOKE = ["--relearn_steps", "1", "--relearn_images", "2", "--relearn_batch", "2"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--forget_class", type=int, default=7, help="held-out digit (not 1, 2, 4)")
    p.add_argument("--class_methods", nargs="*", default=CLASS_METHODS)
    p.add_argument("--concept", default="seven", help="held-out concept (not five, three)")
    p.add_argument("--concept_methods", nargs="*", default=CONCEPT_METHODS)
    p.add_argument("--attacks", nargs="+", default=ATTACKS, choices=ATTACKS)
    p.add_argument("--seed", type=int, default=0, help="erasure and attack seed")
    p.add_argument("--eval_samples_per_class", type=int, default=20, help="class evaluation")
    p.add_argument("--eval_images_per_class", type=int, default=10, help="concept evaluation")
    p.add_argument("--max_prompts", type=int, default=5, help="forget prompts attacked")
    p.add_argument("--prompt_seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--class_samples", type=int, default=50, help="class samples judged per point")
    p.add_argument("--relearn_steps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--relearn_images", type=int, default=32)
    p.add_argument("--attack_optimizer", default="adamw", choices=["adamw", "adam"])
    p.add_argument("--only", choices=["class", "concept", "table"], default=None)
    p.add_argument("--no_original", action="store_true", help="do not attack the original")
    p.add_argument("--output_dir", default="runs/robustness")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = p.parse_args(argv)
    args.class_extra, args.concept_extra, args.attack_extra = [], [], []
    if args.smoke:
        args.class_methods, args.concept_methods = ["joint", "lur-relearn"], ["esd", "lur-adv"]
        args.attacks = ["unlearndiff", "relearn"]
        args.max_prompts, args.prompt_seeds, args.class_samples = 1, [0], 2
        args.class_extra, args.concept_extra = CLASS_SMOKE, CONCEPT_SMOKE
        args.attack_extra = ATTACK_SMOKE
        args.relearn_steps, args.relearn_images = [1], 2
    return args


def method_flags(spec: str) -> tuple[str, list[str]]:
    """``lur-relearn+relearn_weight=3`` → ("lur-relearn", ["--relearn_weight", "3"])."""
    name, *knobs = spec.split("+")
    flags = []
    for k in knobs:
        key, _, value = k.partition("=")
        flags += [f"--{key}", value] if value else [f"--{key}"]
    return name, flags


def _relearn_flags(args) -> list[str]:
    if args.smoke:
        return RELEARN_SMOKE
    steps = [str(s) for s in args.relearn_steps]
    return ["--relearn_steps", *steps, "--relearn_images", str(args.relearn_images)]


def attack_once(model, out: Path, flags: list[str]) -> dict:
    """``eval/attack.py MODEL --output_dir OUT FLAGS``, or its ``attack.json`` when ``OUT``
    already holds one (benchmarks resume)."""
    from erase.cli import attack

    if (out / "attack.json").is_file():
        return json.loads((out / "attack.json").read_text())
    return attack.run(attack.parse_args([model, "--output_dir", str(out), "--overwrite", *flags]))


def attack_run(
    run_dir: Path, attack: str, target: list[str], seed: int, smoke: bool, extra=()
) -> dict:
    """``eval/attack.py RUN_DIR --attack A`` into ``RUN_DIR/attack-A`` (reused when there);
    ``target`` is ``["--forget_class", K]`` or ``["--concept", C]``. The comparison
    benchmarks' ``--attacks`` and the frontier's robustness column use this; settings are the
    attack's defaults (smoke: tiny), then ``extra`` (the caller's flags win)."""
    flags = [*target, "--attack", attack, "--seed", str(seed)]
    if smoke:
        flags += (
            RELEARN_SMOKE + ["--num_inference_steps", "2"] if attack == "relearn" else ATTACK_SMOKE
        )
        flags += ["--samples", "2"] if target[0] == "--forget_class" else ["--max_prompts", "1"]
        flags += [] if target[0] == "--forget_class" else ["--seeds", "0"]
    return attack_once(str(run_dir), Path(run_dir) / f"attack-{attack}", [*flags, *extra])


def summarize_attacks(results: list[dict]) -> dict:
    """Mean pre-ASR, ASR and relearning curve over several attack.json results (seeds)."""
    n = len(results)
    out = {
        "pre_asr": sum(r["pre_asr"] for r in results) / n,
        "asr": sum(r["asr"] for r in results) / n,
        "per_seed": [[r["pre_asr"], r["asr"]] for r in results],
    }
    curves = [{p["steps"]: p["share"] for p in r.get("curve", [])} for r in results]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    if steps:
        out["curve"] = [[s, sum(c[s] for c in curves) / n] for s in steps]
    return out


def attack_cell(summary: dict) -> str:
    """``pre → ASR`` (%), and the relearning curve ``s=0/5/10/20: a/b/c/d`` when there is one."""
    cell = f"{_pct(summary['pre_asr'])} → {_pct(summary['asr'])}"
    if summary.get("curve"):
        steps = "/".join(str(s) for s, _ in summary["curve"])
        cell += f" (s={steps}: " + "/".join(_pct(v) for _, v in summary["curve"]) + ")"
    return cell


def _erase(script: str, run_dir: Path, flags: list[str]) -> dict:
    if not (run_dir / ".complete").exists():
        load_script(script).main(
            [*flags, "--output_dir", str(run_dir), "--overwrite", "--stop_at_erased", "off"]
        )
    return json.loads((run_dir / "metrics.json").read_text())


def _erase_and_attack(args, out: Path, script: str, target, specs, erase_extra, attacks) -> None:
    """The original model (unless ``--no_original``) and every method in ``specs``, each
    erased with ``target`` + its knobs + ``erase_extra``, then attacked with each of
    ``attacks`` (attack name → flags). Finished erasures and attacks are reused."""
    for name, flags in [] if args.no_original else attacks.items():
        attack_once("embedded", out / "original" / f"attack-{name}", flags)
    for spec in specs:
        method, knobs = method_flags(spec)
        run_dir = out / spec
        flags = [*target, "--method", method, "--seed", str(args.seed), *knobs, *erase_extra]
        _erase(script, run_dir, flags)
        for name, attack_flags in attacks.items():
            attack_once(str(run_dir), run_dir / f"attack-{name}", attack_flags)


def run_class(args, out: Path) -> None:
    target = ["--forget_class", str(args.forget_class)]
    flags = [*target, "--attack", "relearn", "--samples", str(args.class_samples)]
    flags += ["--seed", str(args.seed), *_relearn_flags(args)]
    if args.smoke:
        flags += ["--num_inference_steps", "2"]
    extra = ["--eval_samples_per_class", str(args.eval_samples_per_class), *args.class_extra]
    _erase_and_attack(
        args, out, "scripts/erase_class.py", target, args.class_methods, extra, {"relearn": flags}
    )


def _prompt_flags(args, attack: str) -> list[str]:
    flags = ["--concept", args.concept, "--attack", attack, "--seed", str(args.seed)]
    flags += ["--max_prompts", str(args.max_prompts), "--seeds", *map(str, args.prompt_seeds)]
    if attack == "relearn":
        flags += _relearn_flags(args) + (["--num_inference_steps", "2"] if args.smoke else [])
    else:
        flags += ["--attack_optimizer", args.attack_optimizer, *args.attack_extra]
    return flags


def run_concept(args, out: Path) -> None:
    extra = ["--eval_images_per_class", str(args.eval_images_per_class)]
    extra += ["--cache_dir", str(out / "cache"), *args.concept_extra]
    attacks = {a: _prompt_flags(args, a) for a in args.attacks}
    _erase_and_attack(
        args,
        out,
        "scripts/erase_concept.py",
        ["--concept", args.concept],
        args.concept_methods,
        extra,
        attacks,
    )


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(x) -> str:
    return "–" if x is None or x != x else f"{100 * x:.0f}"


def _curve(a: dict | None) -> list[list]:
    return [[p["steps"], p["share"]] for p in a.get("curve", [])] if a else []


def collect(args, out: Path) -> dict:
    """The table's numbers from the run and attack folders under ``out``."""
    table: dict = {"machine": machine_record("robustness.py")}
    cdir = out / f"class-{args.forget_class}"
    rows = {}
    for spec in ["original", *args.class_methods]:
        a = _read(cdir / spec / "attack-relearn" / "attack.json")
        m = _read(cdir / spec / "metrics.json") or {}
        rows[spec] = {
            "unlearning_accuracy": m.get("unlearning_accuracy"),
            "retained_accuracy": m.get("retained_accuracy"),
            "retained_accuracy_before": (m.get("before") or {}).get("retained_accuracy"),
            "erasure_seconds": m.get("erasure_seconds"),
            "relearn_curve": _curve(a),
            "relearn_pre_asr": a["pre_asr"] if a else None,
            "relearn_asr": a["asr"] if a else None,
        }
    table["class"] = {"forget_class": args.forget_class, "rows": rows}
    kdir = out / f"concept-{args.concept}"
    rows = {}
    for spec in ["original", *args.concept_methods]:
        m = _read(kdir / spec / "metrics.json") or {}
        row = {
            "forget_accuracy": m.get("forget_digit_accuracy_after"),
            "other_digits_accuracy": m.get("other_digits_accuracy_after"),
            "other_digits_accuracy_before": m.get("other_digits_accuracy_before"),
            "erasure_seconds": m.get("erasure_seconds"),
        }
        for attack in args.attacks:
            a = _read(kdir / spec / f"attack-{attack}" / "attack.json")
            row[attack] = (
                {
                    "pre_asr": a["pre_asr"],
                    "asr": a["asr"],
                    "n": a["n"],
                    "seconds_per_prompt": a["seconds_per_prompt"],
                    "curve": _curve(a),
                }
                if a
                else None
            )
        rows[spec] = row
    table["concept"] = {"concept": args.concept, "attacks": args.attacks, "rows": rows}
    table["verdicts"] = verdicts(table)
    return table


def _last_share(curve):
    return curve[-1][1] if curve else None


def verdicts(table: dict) -> list[str]:
    """The issue's targets, checked row by row: a resisting variant at most half the ASR of
    joint and esd, at most half the samples back after the last relearning step, the other
    digits within 3 points of the original."""
    out = []
    c = table["class"]["rows"]
    for spec, r in c.items():
        if spec.split("+")[0] not in RESISTING:
            continue
        share = _last_share(r["relearn_curve"])
        if share is None:
            continue
        ok_half = all(
            share <= 0.5 * _last_share(c[b]["relearn_curve"])
            for b in BASELINES
            if b in c and c[b]["relearn_curve"]
        )
        drop = (
            None
            if r["retained_accuracy"] is None or r["retained_accuracy_before"] is None
            else r["retained_accuracy_before"] - r["retained_accuracy"]
        )
        out.append(
            f"class {spec}: relearned share {_pct(share)} % "
            f"({'≤' if share <= 0.5 else '>'} 50 %: {'met' if share <= 0.5 else 'NOT met'}); "
            f"halves joint/esd: {'met' if ok_half else 'NOT met'}; other digits "
            + ("–" if drop is None else f"{-100 * drop:+.1f} points")
            + (
                ""
                if drop is None
                else f" ({'met' if drop <= 0.03 else 'NOT met'}, target within 3)"
            )
        )
    k = table["concept"]["rows"]
    for spec, r in k.items():
        if spec.split("+")[0] not in RESISTING:
            continue
        parts = []
        for attack in table["concept"]["attacks"]:
            if r.get(attack) is None:
                continue
            asr = r[attack]["asr"]
            base = [k[b][attack]["asr"] for b in BASELINES if b in k and k[b].get(attack)]
            ok = all(asr <= 0.5 * b for b in base)
            parts.append(f"{attack} {_pct(asr)} % ({'halves' if ok else 'does NOT halve'})")
        if r.get("relearn"):
            share = _last_share(r["relearn"]["curve"])
            if share is not None:
                parts.append(f"relearned share {_pct(share)} % ({'≤' if share <= 0.5 else '>'} 50)")
        if r["other_digits_accuracy"] is not None and r["other_digits_accuracy_before"]:
            drop = r["other_digits_accuracy_before"] - r["other_digits_accuracy"]
            parts.append(
                f"other digits {-100 * drop:+.1f} points ({'met' if drop <= 0.03 else 'NOT met'})"
            )
        if parts:
            out.append(f"concept {spec}: " + "; ".join(parts))
    return out


def to_markdown(table: dict, args) -> str:
    c = table["class"]
    steps = sorted({s for r in c["rows"].values() for s, _ in r["relearn_curve"]})
    lines = [
        f"**Class erasure, digit {c['forget_class']}** (embedded digits DDPM; "
        "`scripts/erase_class.py` defaults, 150 steps): relearning on "
        f"{args.relearn_images} real images of the digit, share of {args.class_samples} "
        "samples the judge sees as the digit after s fine-tuning steps.",
        "",
        "| method | UA (%) | other digits (%) (orig.) | "
        + " | ".join(f"relearn s={s} (%)" for s in steps)
        + " | erasure (s) |",
        "|---|---|---|" + "---|" * len(steps) + "---|",
    ]
    for spec, r in c["rows"].items():
        shares = dict(r["relearn_curve"])
        ra = (
            "–"
            if r["retained_accuracy"] is None
            else f"{_pct(r['retained_accuracy'])} ({_pct(r['retained_accuracy_before'])})"
        )
        t = r["erasure_seconds"]
        lines.append(
            f"| {spec} | {_pct(r['unlearning_accuracy'])} | {ra} | "
            + " | ".join(_pct(shares.get(s)) for s in steps)
            + f" | {'–' if t is None else f'{t:.0f}'} |"
        )
    k = table["concept"]
    attacks = k["attacks"]
    lines += [
        "",
        f'**Concept erasure, "{k["concept"]}"** (embedded tiny SD; '
        "`scripts/erase_concept.py` defaults, 100 steps): ASR = pre-ASR → ASR "
        "(UnlearnDiffAtk's definition) over the first "
        f"{args.max_prompts} forget prompts × seeds {', '.join(map(str, args.prompt_seeds))}.",
        "",
        "| method | erased digit (%) | other digits (%) (orig.) | "
        + " | ".join(attacks)
        + (
            " | relearn curve s=0/" + "/".join(map(str, args.relearn_steps))
            if "relearn" in attacks
            else ""
        )
        + " | erasure (s) |",
        "|---|---|---|" + "---|" * len(attacks) + ("---|" if "relearn" in attacks else "") + "---|",
    ]
    for spec, r in k["rows"].items():
        od = (
            "–"
            if r["other_digits_accuracy"] is None
            else f"{_pct(r['other_digits_accuracy'])} ({_pct(r['other_digits_accuracy_before'])})"
        )
        cells = []
        for attack in attacks:
            a = r.get(attack)
            cells.append("–" if a is None else f"{_pct(a['pre_asr'])} → {_pct(a['asr'])}")
        if "relearn" in attacks:
            a = r.get("relearn")
            cells.append("–" if not a else "/".join(_pct(s) for _, s in a["curve"]))
        t = r["erasure_seconds"]
        lines.append(
            f"| {spec} | {_pct(r['forget_accuracy'])} | {od} | "
            + " | ".join(cells)
            + f" | {'–' if t is None else f'{t:.0f}'} |"
        )
    secs = {
        a: [r[a]["seconds_per_prompt"] for r in k["rows"].values() if r.get(a)] for a in attacks
    }
    cost = ", ".join(f"{a} ≤ {max(v):.0f} s" for a, v in secs.items() if v)
    lines += ["", f"Attack cost per prompt (record): {cost}." if cost else "", ""]
    lines += ["Targets (issue 12):", ""] + [f"- {v}" for v in table["verdicts"]] + [""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    from erase.io import atomic_write_json, atomic_write_text

    out = Path(args.output_dir)
    if args.only in (None, "class") and args.class_methods:
        run_class(args, out / f"class-{args.forget_class}")
    if args.only in (None, "concept") and args.concept_methods:
        run_concept(args, out / f"concept-{args.concept}")
    table = collect(args, out)
    md = to_markdown(table, args)
    atomic_write_text(out / "table.md", md)
    atomic_write_json(out / "table.json", table)
    print(md)
    return table


if __name__ == "__main__":
    main()
