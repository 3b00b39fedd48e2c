#!/usr/bin/env python
"""Unlearning accuracy of finished class-erasure runs, measured on many forget-class samples.

    python benchmarks/forget_ua.py runs/compare7 --samples 300

A run's own metrics judge 50 samples per class, so one image moves UA by 2 points: too coarse
to tell 94 % from 96 % against a 95 % target. This draws ``--samples`` images of the forget
class from each run's erased UNet (and from the original once) with a seed the runs' own
evaluation never uses, judges them with the same independent digits classifier, and writes
``forget_ua.md`` / ``forget_ua.json`` into the runs folder: UA with its 95 % Wilson interval
per run, and per method the mean over seeds and the pooled UA of all its seeds' samples with
its interval. Models already judged in ``forget_ua.json`` with the same settings are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _scripts import SMOKE_HELP, machine_record  # noqa: E402

from erase.metrics.intervals import wilson  # noqa: E402  (the tables' interval)

SEED = 20_000  # the runs' evaluation samples with seed 10 000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("runs_dir", nargs="?", default="runs/compare7")
    p.add_argument("--samples", type=int, default=300, help="forget-class images per model")
    p.add_argument("--methods", nargs="+", default=None, help="only these methods' runs")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + " (4 samples a model)")
    args = p.parse_args(argv)
    if args.smoke:
        args.samples = 4
    return args


def forget_ua(unet, scheduler, classifier, cfg: dict, n: int) -> tuple[float, int]:
    """(UA, number of samples not judged as a forget class) over ``n`` samples per class."""
    from erase.class_eval import images_by_class
    from erase.metrics.classification import predict_labels

    forget = [int(c) for c in cfg["forget_class"]]
    images = images_by_class(
        unet,
        scheduler,
        forget,
        n,
        cfg["guidance_scale"],
        cfg["null_class"],
        cfg["num_inference_steps"],
        SEED,
    )
    missed = 0
    for c, x in images.items():
        missed += int((predict_labels(classifier, x) != c).sum())
    total = n * len(forget)
    return missed / total, missed


def main(argv=None):
    args = parse_args(argv)
    from erase.embedded.classifier import load_digits_classifier
    from erase.errors import EraseError
    from erase.generators import load_generator
    from erase.io import atomic_write_json, atomic_write_text

    root = Path(args.runs_dir)
    configs = {
        d: json.loads((d / "erase_config.json").read_text())
        for d in sorted(root.iterdir())
        if (d / ".complete").exists() and (d / "erase_config.json").exists()
    }
    if args.methods:
        configs = {d: c for d, c in configs.items() if c["method"] in args.methods}
    if not configs:
        raise EraseError(f"no finished class-erasure runs in {str(root)!r}")
    classes = {tuple(c["forget_class"]) for c in configs.values()}
    if len(classes) > 1:
        raise EraseError(
            f"the runs in {str(root)!r} erase different classes {sorted(classes)}; "
            "give a folder of runs of one forget class (as compare_methods.py writes)"
        )
    cfg0 = next(iter(configs.values()))
    if cfg0.get("pretrained_model") != "embedded:digits_ddpm":
        raise EraseError("forget_ua.py judges runs on the embedded digits model only")
    torch.manual_seed(0)
    classifier = load_digits_classifier()
    # models judged by an earlier call with the same settings are not sampled again
    done = {}
    previous = root / "forget_ua.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        if old.get("samples") == args.samples and old.get("seed") == SEED:
            done = {r["run"]: r for r in old["runs"]}
    rows = []
    for d, cfg in [(None, cfg0), *configs.items()]:
        name, method = ("original", "original") if d is None else (d.name, cfg["method"])
        if name in done and done[name]["method"] == method:
            rows.append(done[name])
            continue
        gen = load_generator(d, classes=True)  # None: the embedded original
        ua, missed = forget_ua(gen.unet, gen.scheduler, classifier, cfg, args.samples)
        rows.append({"run": name, "method": method, "ua": ua, "missed": missed})
        print(f"{name}: UA {100 * ua:.1f} % ({missed}/{args.samples})", flush=True)

    n = args.samples
    per_model = n * len(cfg0["forget_class"])
    lines = [
        f"UA on {n} forget-class samples per model (seed {SEED}; the runs' own metrics use 50 "
        f"with seed 10000), judged by the independent digits classifier; 95 % Wilson intervals.",
        "",
        "| run | UA (%) | 95 % interval |",
        "|---|---|---|",
    ]
    for r in rows:
        lo, hi = wilson(r["missed"], per_model)
        r["interval"] = [lo, hi]
        lines.append(f"| {r['run']} | {100 * r['ua']:.1f} | {100 * lo:.1f}–{100 * hi:.1f} |")
    by_method = defaultdict(list)
    for r in rows[1:]:
        by_method[r["method"]].append(r)
    lines += [
        "",
        "| method | seeds | mean UA (%) ± std | all seeds' samples pooled: UA (%), 95 % interval |",
        "|---|---|---|---|",
    ]
    summary = {}
    for m, rs in by_method.items():
        xs = [r["ua"] for r in rs]
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        missed, total = sum(r["missed"] for r in rs), per_model * len(rs)
        lo, hi = wilson(missed, total)
        summary[m] = {
            "mean": statistics.mean(xs),
            "std": sd,
            "seeds": len(xs),
            "pooled": missed / total,
            "pooled_interval": [lo, hi],
        }
        lines.append(
            f"| {m} | {len(xs)} | {100 * statistics.mean(xs):.1f} ± {100 * sd:.1f} | "
            f"{100 * missed / total:.1f} ({100 * lo:.1f}–{100 * hi:.1f}) |"
        )
    md = "\n".join(lines) + "\n"
    atomic_write_text(root / "forget_ua.md", md)
    atomic_write_json(
        root / "forget_ua.json",
        {
            "machine": machine_record("forget_ua.py"),
            "samples": n,
            "seed": SEED,
            "runs": rows,
            "methods": summary,
        },
    )
    print(md)


if __name__ == "__main__":
    main()
