#!/usr/bin/env python
"""Concept erasure on the embedded text-to-image world: lur and every baseline, before/after.

    python benchmarks/compare_concepts.py --concepts three inverted --output_dir runs/concepts

Runs ``scripts/erase_concept.py`` once per (concept, method) with identical flags and a shared
latent cache, then writes ``table.md`` / ``table.json``: for a digit concept the share of
"a handwritten digit <word>" images judged as that digit and the accuracy on the other nine;
for a style the target style's accuracy and the other styles' and the digits' accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scripts import CONCEPT_SMOKE, SMOKE_HELP, load_script  # noqa: E402  (benchmarks/ is on the path when run)

METHODS = ["lur", "joint", "esd", "salun", "ga", "pcgrad"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--concepts", nargs="+", default=["three", "inverted"])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output_dir", default="runs/concepts")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + " ('three': lur, joint)")
    p.add_argument(
        "--attacks",
        nargs="*",
        default=[],
        choices=["unlearndiff", "soft_prompt", "concept_inversion", "relearn"],
        help="also attack every run (eval/attack.py, its defaults; RUN/attack-A) and add "
        "pre-ASR → ASR per attack and the relearning curve to the table",
    )
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args(argv)
    if args.smoke:
        args.concepts, args.methods = ["three"], ["lur", "joint"]
        args.extra = CONCEPT_SMOKE + args.extra
    return args


def _pct(x):
    return "–" if x != x else f"{100 * x:.1f}"


def main(argv=None):
    args = parse_args(argv)
    from erase.io import atomic_write_json, atomic_write_text

    run = load_script("scripts/erase_concept.py").main
    out = Path(args.output_dir)
    results, robust = {}, {}
    for concept in args.concepts:
        for method in args.methods:
            run_dir = out / f"{concept}-{method}"
            if not (run_dir / ".complete").exists():
                run(
                    [
                        "--concept",
                        concept,
                        "--method",
                        method,
                        "--seed",
                        str(args.seed),
                        "--output_dir",
                        str(run_dir),
                        "--overwrite",
                        "--stop_at_erased",
                        "off",  # methods compared at the same fixed budget
                        "--cache_dir",
                        str(out / "cache"),
                        *args.extra,
                    ]
                )
            results[(concept, method)] = json.loads((run_dir / "metrics.json").read_text())
            for attack in args.attacks:
                from robustness import attack_run, summarize_attacks

                res = attack_run(run_dir, attack, ["--concept", concept], args.seed, args.smoke)
                robust.setdefault((concept, method), {})[attack] = summarize_attacks([res])
    from robustness import attack_cell

    heads = "".join(f" {a}: pre-ASR → ASR (%) |" for a in args.attacks)
    lines = []
    for concept in args.concepts:
        m0 = results[(concept, args.methods[0])]
        digit = bool(m0["erased_digits"])
        if digit:
            lines += [
                f"Erasing the digit **{concept}**: share of images judged as the digit "
                "(↓ for the erased one, = for the rest).",
                "",
                "| method | erased digit (%) | other digits (%) | styled prompts' digits (%) "
                "| time (s) |" + heads,
                "|---|---|---|---|---|" + "---|" * len(args.attacks),
                f"| original | {_pct(m0['forget_digit_accuracy_before'])} | "
                f"{_pct(m0['other_digits_accuracy_before'])} | "
                f"{_pct(m0['styled_digit_accuracy_before'])} | – |" + " – |" * len(args.attacks),
            ]
        else:
            lines += [
                f"Erasing the style **{concept}**: share of images judged in the asked "
                "style (↓ for the erased one, = for the rest).",
                "",
                "| method | erased style (%) | other styles (%) | digits (%) | time (s) |" + heads,
                "|---|---|---|---|---|" + "---|" * len(args.attacks),
                f"| original | {_pct(m0['forget_style_accuracy_before'])} | "
                f"{_pct(m0['other_styles_accuracy_before'])} | "
                f"{_pct(m0['other_digits_accuracy_before'])} | – |" + " – |" * len(args.attacks),
            ]
        for method in args.methods:
            m = results[(concept, method)]
            t = m.get("erasure_seconds", float("nan"))
            r = robust.get((concept, method), {})
            cells = "".join(f" {attack_cell(r[a]) if a in r else '–'} |" for a in args.attacks)
            if digit:
                lines.append(
                    f"| {method} | {_pct(m['forget_digit_accuracy_after'])} | "
                    f"{_pct(m['other_digits_accuracy_after'])} | "
                    f"{_pct(m['styled_digit_accuracy_after'])} | {t:.0f} |" + cells
                )
            else:
                lines.append(
                    f"| {method} | {_pct(m['forget_style_accuracy_after'])} | "
                    f"{_pct(m['other_styles_accuracy_after'])} | "
                    f"{_pct(m['other_digits_accuracy_after'])} | {t:.0f} |" + cells
                )
        lines.append("")
    lines.append(results[(args.concepts[0], args.methods[0])].get("conventions", ""))
    md = "\n".join(lines) + "\n"
    atomic_write_text(out / "table.md", md)
    atomic_write_json(
        out / "table.json",
        {
            f"{c}/{m}": {**v, "attacks": robust[(c, m)]} if (c, m) in robust else v
            for (c, m), v in results.items()
        },
    )
    print(md)


if __name__ == "__main__":
    main()
