#!/usr/bin/env python
"""How far apart are two models that never learned the concept? The references' seed spread.

    python benchmarks/reference_spread.py --concepts zero thick one striped --seeds 0 1 \
        --runs benchmarks/resist/concepts-zero-thick.json --output_dir benchmarks/reference-spread

Every gap to exact unlearning is measured against a model retrained without the concept
(``erase.reference.concept_reference``: the tiny text-to-image world without the concept's
images and prompts, about 25 CPU-minutes a seed, cached). One retraining is one draw. This
benchmark measures each seed's reference exactly as an erasure run's gap probe does
(``erase.concept_reference.reference_measures``: the world's judge on the same prompts and
seeds, the relearning probe of 32 images, AdamW 1e-4, 50 judged images after 5 / 10 / 20
steps, seed ``--relearn_seed``; the measures are cached, so the frontier's and resist's runs
of that seed reuse them), then per concept:

- each reference's erased share, kept accuracy and share back after 5 / 10 / 20 steps;
- their per-measure mean, which ``--reference auto auto …`` measures a run against;
- the noise floor (each reference's Avg. Gap to the others' mean, averaged) and the largest
  difference between two seeds at each relearning budget;
- with ``--runs`` (``resist.py``'s ``table.json``): each run's relearning curve against the
  mean and against the lowest reference, budget by budget: is it back no faster than a model
  that never learned the concept (issue 27's target)?

Writes ``spread.md``, ``spread.json`` and ``spread.png`` (each concept's relearning curves: a
thin line per reference seed, their mean thick, the runs dashed). Missing references are
trained first (``--no_train``: skip concepts whose references are not all cached).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scripts import SMOKE_HELP, machine_record  # noqa: E402

CONCEPTS = ["zero", "thick", "one", "striped"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concepts", nargs="+", default=CONCEPTS, help="digit words / styles")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="reference seeds (≥ 2)")
    p.add_argument(
        "--relearn_seed", type=int, default=0, help="the relearning probe's seed (a run's --seed)"
    )
    p.add_argument(
        "--images_per_class",
        type=int,
        default=40,
        help="judged images per digit and style (erase_concept's --eval_images_per_class)",
    )
    p.add_argument(
        "--runs", nargs="*", default=[], help="resist.py table.json files to set beside them"
    )
    p.add_argument("--no_train", action="store_true", help="only concepts with every seed cached")
    p.add_argument("--output_dir", default="runs/reference-spread")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = p.parse_args(argv)
    if len(set(args.seeds)) < 2:
        p.error("--seeds needs at least two different seeds: the spread is between them")
    args.reference_folder = None
    if args.smoke:  # the original stands in for every seed: the plumbing, not the spread
        args.concepts, args.seeds, args.images_per_class = ["zero"], [0, 1], 2
        args.reference_folder = str(ROOT / "erase" / "assets" / "tiny_sd")
    return args


def reference_folder(concept: str, seed: int, args, train: bool) -> Path | None:
    """The cached reference of ``concept`` and ``seed``, trained first when missing (None with
    ``--no_train``)."""
    if args.reference_folder:
        return Path(args.reference_folder)
    from erase.reference import _trained, concept_reference, concept_reference_path

    if not train and not _trained(concept_reference_path([concept], seed)):
        return None
    return concept_reference([concept], seed)


def measure_concept(concept: str, args) -> dict | None:
    """Each seed's reference measured as a run's gap probe measures it; their mean and floor."""
    from erase.concept_eval import evaluate_world
    from erase.concept_reference import reference_measures, relearn_settings
    from erase.concepts import resolve_concept
    from erase.embedded.tiny_sd import load_tiny_sd
    from erase.reference_gap import mean_measures, noise_floor

    folders = [reference_folder(concept, s, args, not args.no_train) for s in args.seeds]
    if None in folders:
        print(f"{concept}: not every reference cached (--no_train): skipped")
        return None
    before = evaluate_world(load_tiny_sd(), args.images_per_class)
    n_prompts = len(resolve_concept(concept).forget)
    relearn = relearn_settings(concept, n_prompts, args.relearn_seed)
    each = [reference_measures(f, concept, before, args.images_per_class, relearn) for f in folders]
    steps = list(relearn["steps"])
    spread = {
        s: max(m[f"relearn@{s}"] for m in each) - min(m[f"relearn@{s}"] for m in each)
        for s in steps
    }
    return {
        "concept": concept,
        "seeds": list(args.seeds),
        "folders": [f.name for f in folders],
        "steps": steps,
        "each": each,
        "mean": mean_measures(each),
        "noise_floor": noise_floor(each),
        "largest_seed_difference": spread,
        "relearning": relearn,
    }


def runs_against(result: dict, table_files: list[str]) -> list[dict]:
    """Each resist.py run of this concept: its relearning curve against the references' mean
    and their lowest curve, budget by budget (a budget the run's curve lacks stays None)."""
    steps, rows = result["steps"], []
    mean = {s: result["mean"].get(f"relearn@{s}") for s in steps}
    low = {s: min(m[f"relearn@{s}"] for m in result["each"]) for s in steps}
    for path in table_files:
        for r in json.loads(Path(path).read_text()).get("rows", []):
            if r.get("target") != result["concept"] or not r.get("relearn"):
                continue
            curve = {int(s): v for s, v in r["relearn"]["curve"]}
            mine = {s: curve.get(s) for s in steps}
            rows.append(
                {
                    "method": r["method"],
                    "from": Path(path).name,
                    "back": mine,
                    "at_or_below_mean": {s: _le(mine[s], mean[s]) for s in steps},
                    "at_or_below_every_reference": {s: _le(mine[s], low[s]) for s in steps},
                    "erased": r.get("erased"),
                    "kept": r.get("kept"),
                }
            )
    return rows


def _le(a, b):
    return None if a is None or b is None else bool(a <= b + 1e-9)


def _p(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def report(results: list[dict]) -> str:
    """The tables: per concept each reference, their mean with the noise floor, the runs."""
    lines = [
        "# How far apart are models that never learned the concept?",
        "",
        "Each seed's exact-unlearning reference measured as an erasure run's gap probe measures "
        "it: erased share and kept accuracy by the world's judge, the share of the concept "
        "back after each budget of the relearning probe (32 images, AdamW 1e-4, 50 judged "
        "images). The mean is what `--reference auto auto …` measures a run against; the "
        "noise floor is each reference's Avg. Gap to the others' mean, averaged.",
    ]
    for r in results:
        steps = r["steps"]
        lines += [
            "",
            f"## {r['concept']}",
            "",
            f"| model | erased % | kept % | back after {' / '.join(map(str, steps))} steps % "
            "| Avg. Gap |",
            "|---|---|---|---|---|",
        ]
        for seed, m in zip(r["seeds"], r["each"]):
            lines.append(_row(f"never learned, seed {seed}", m, steps))
        floor = r["noise_floor"].get("avg_gap")
        lines.append(_row(f"**mean of {len(r['each'])}** (noise floor)", r["mean"], steps, floor))
        for run in r.get("runs", []):
            m = {f"relearn@{s}": v for s, v in run["back"].items()}
            m.update(erased=run["erased"], kept=run["kept"])
            lines.append(_row(f"`{run['method']}` ({run['from']})", m, steps))
        d = r["largest_seed_difference"]
        lines += [
            "",
            "Largest difference between two seeds: "
            + ", ".join(f"{_p(d[s])} points after {s} steps" for s in steps)
            + ".",
        ]
        for run in r.get("runs", []):
            mean, every = run["at_or_below_mean"], run["at_or_below_every_reference"]
            lines.append(
                f"- `{run['method']}` back no faster than the mean at "
                f"{sum(bool(mean[s]) for s in steps)} of {len(steps)} budgets, than every "
                f"reference at {sum(bool(every[s]) for s in steps)} of {len(steps)}"
            )
    return "\n".join(lines) + "\n"


def _row(model: str, m: dict, steps, gap=None) -> str:
    back = " / ".join(_p(m.get(f"relearn@{s}")) for s in steps)
    g = "–" if gap is None else f"{gap:.3f}"
    return f"| {model} | {_p(m.get('erased'))} | {_p(m.get('kept'))} | {back} | {g} |"


def plot(results: list[dict], path: Path) -> None:
    """Each concept's relearning curves: every reference thin, their mean thick, runs dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4), squeeze=False)
    for ax, r in zip(axes[0], results):
        xs = [0, *r["steps"]]
        for seed, m in zip(r["seeds"], r["each"]):
            ax.plot(xs, _curve(m, xs), color="0.6", lw=1, label=f"never learned, seed {seed}")
        ax.plot(xs, _curve(r["mean"], xs), color="k", lw=2.5, label="their mean")
        for run in r.get("runs", []):
            ys = [run["back"][s] for s in r["steps"]]
            ax.plot(r["steps"], ys, "--o", ms=3, label=run["method"])
        ax.set(title=r["concept"], xlabel="relearning steps", ylabel="share back")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _curve(m: dict, xs) -> list:
    return [m.get(f"relearn@{s}", float("nan")) for s in xs]


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.output_dir)
    if args.smoke and "ERASE_CACHE_DIR" not in os.environ:
        os.environ["ERASE_CACHE_DIR"] = str(out / "cache")  # smoke measures stay out of yours
    if args.smoke:
        import erase.concept_reference as cr

        cr.RELEARN_PROBE = {
            "samples": 2,
            "steps": [1, 2],
            "n_images": 2,
            "batch": 2,
            "num_inference_steps": 2,
        }
    from erase.io import atomic_write_json, atomic_write_text

    results = []
    for concept in args.concepts:
        r = measure_concept(concept, args)
        if r is None:
            continue
        r["runs"] = runs_against(r, args.runs)
        results.append(r)
        print(concept, _row("mean", r["mean"], r["steps"], r["noise_floor"].get("avg_gap")))
    if not results:
        raise SystemExit("no concept had its references (drop --no_train to train them)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "spread.json", {"machine": machine_record("reference_spread.py"), "results": results}
    )
    atomic_write_text(out / "spread.md", report(results))
    plot(results, out / "spread.png")
    print(f"wrote {out / 'spread.md'}, spread.json, spread.png")


if __name__ == "__main__":
    main()
