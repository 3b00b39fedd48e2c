#!/usr/bin/env python
"""The full before/after evaluation of the comparison runs on the embedded world, as one report.

    python benchmarks/embedded_report.py --concepts_dir runs/concepts --class_dir runs/compare7 \\
        --output_dir runs/embedded_report

Takes the ``lur`` and ``joint`` runs written by ``compare_concepts.py`` (and, if given, seed 0
of ``compare_methods.py``), scores CLIPScore (the embedded tiny CLIP) on each concept's forget
and retain prompts for the original and for the first method's model (``lur``), and writes one report with the
judge's before/after tables, the CLIPScores, the grids and the loss/cosine plots. The report
reads the runs' own metrics.json, so its tables are the comparison tables' numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _scripts import SMOKE_HELP, load_script  # noqa: E402  (benchmarks/ is on the path when run)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--concepts_dir", default="runs/concepts")
    p.add_argument("--concepts", nargs="+", default=["three", "inverted"])
    p.add_argument("--class_dir", default=None, help="a compare_methods.py output folder")
    p.add_argument("--methods", nargs="+", default=["lur", "joint"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="CLIPScore seeds")
    p.add_argument("--output_dir", default="runs/embedded_report")
    p.add_argument(
        "--smoke",
        action="store_true",
        help=SMOKE_HELP + " (over compare_concepts.py --smoke: 'three', one CLIPScore seed)",
    )
    args = p.parse_args(argv)
    args.clipscore_flags = []
    if args.smoke:
        args.concepts, args.seeds = ["three"], [0]
        args.clipscore_flags = ["--limit", "2", "--num_inference_steps", "2"]
    return args


def main(argv=None):
    args = parse_args(argv)
    from erase.concepts import resolve_concept
    from erase.errors import EraseError
    from erase.io import atomic_write_text
    from erase.report import build_report

    out, runs_dir = Path(args.output_dir), Path(args.concepts_dir)
    clipscore = load_script("eval/clipscore.py").main
    runs, evals = [], []
    for name in args.concepts:
        for method in args.methods:
            run = runs_dir / f"{name}-{method}"
            if not (run / "metrics.json").is_file():
                raise EraseError(f"no finished run {str(run)!r}; run compare_concepts.py first")
            runs.append(run)
        concept = resolve_concept(name)
        for part, prompts in (("forget", concept.forget), ("retain", concept.retain)):
            prompt_file = out / "prompts" / f"{name}-{part}.txt"
            atomic_write_text(prompt_file, "\n".join(prompts) + "\n")
            scored = args.methods[0]
            for label, model in (("original", None), (scored, runs_dir / f"{name}-{scored}")):
                ev = out / "evals" / f"{name}-{part}-{label}"
                if not (ev / "clipscore.json").is_file():
                    flags = ["--prompts", str(prompt_file), "--output_dir", str(ev)]
                    flags += ["--seeds", *map(str, args.seeds), *args.clipscore_flags]
                    clipscore(flags + (["--model", str(model)] if model else []))
                evals.append(ev)
    if args.class_dir:
        runs += [Path(args.class_dir) / f"{m}-seed0" for m in args.methods]
    report = build_report(
        runs,
        out / "report",
        eval_dirs=evals,
        title="Erasure on the embedded world: " + " vs ".join(args.methods),
    )
    print(f"report -> {report}")
    return report


if __name__ == "__main__":
    main()
