#!/usr/bin/env python
"""Does the erasure stay gone? Each method erased to the stopping target, attacked, and set
against the model retrained without the concept (the floor).

    python benchmarks/resist.py --digits 2 3 --output_dir runs/resist
    python benchmarks/resist.py --digits --concepts zero thick   # the text-to-image world

Per digit K, the reference — the digits DDPM retrained without K
(``erase.reference.digits_reference``: trained into the cache on first use, 15–30 CPU-minutes)
— is attacked once; then per method ``scripts/erase_class.py --forget_class K --method M
--reference REF`` with every other default (the stopping rule: 95 % erased by the digits
classifier, cap 4 × the budget; the Avg. Gap to the reference in metrics.json), and each model
is attacked twice: ``relearn`` (32 real images of K, AdamW 1e-4, batch 32, after 5/10/20 steps)
and ``benign`` (``eval/attack.py``: the other digits' images, after 5/10/20/50 steps), each
point judged a second time by ``digits-svm``, a judge of another model family. The relearn
curves, the run's and the reference's, are read from the run's gap probe, which relearned both
with those very settings and judges; with other settings (``--samples``, ``--attack_flags``)
``eval/attack.py`` relearns afresh.

Per concept C (a digit word or a style of the tiny text-to-image world) the same, with
``scripts/erase_concept.py --concept C`` and the tiny world retrained without C's images and
prompts (``erase.reference.concept_reference``, about 25 CPU-minutes); relearning uses the
original's images of C, 50 judged images per point, and the world's judge, checked by
``embedded-svm`` (SVMs on raw pixels: another model family). ``--reference_seeds K`` measures
each run against the mean of K references of seeds 0..K-1 (one retraining is one draw: two
seeds differ by up to 12 points in the share back after 10 relearning steps), and their spread is
the noise floor, printed beside each run's Avg. Gap: the gap below which a run cannot be told
from retraining (``--noise_floor`` is K = 2); the reference's relearning curve in the table is
the mean of the K, its benign curve seed 0's. Finished runs and attacks are reused, so the
benchmark resumes. Writes ``table.md`` and ``table.json``; ``--render TABLE_JSON`` prints a
finished one's table again. The "best back within s" column is the attacker's view: the most
measured at any budget up to s (a running maximum), the model's against the reference's, so a
curve that dips is read at its peak; "under" means at or under the reference at every budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scripts import CLASS_SMOKE, CONCEPT_SMOKE, SMOKE_HELP, load_script, machine_record  # noqa: E402

METHODS = ["joint", "lur", "lur-resist"]
RELEARN_STEPS = [5, 10, 20]
BENIGN_STEPS = [5, 10, 20, 50]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--digits", type=int, nargs="*", default=[2, 3], help="1 2 4 tune; others held out"
    )
    p.add_argument(
        "--concepts",
        nargs="*",
        default=[],
        help="digit words / styles of the text-to-image world (five, outlined tune; others "
        "held out; default: none)",
    )
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=50, help="class samples judged per point")
    p.add_argument(
        "--attacks",
        nargs="*",
        default=["relearn", "benign"],
        help="curve attacks per model (none: the erasure and its Avg. Gap only)",
    )
    p.add_argument("--output_dir", default="runs/resist")
    p.add_argument(
        "--erase_flags", default="", help="extra erase_class flags, e.g. '--max_train_steps 4'"
    )
    p.add_argument(
        "--attack_flags", default="", help="extra attack flags, e.g. '--num_inference_steps 4'"
    )
    p.add_argument("--reference", default=None, help="a reference folder for every digit (tests)")
    p.add_argument(
        "--reference_seeds",
        type=int,
        default=1,
        help="references per target (seeds 0..K-1, 15–30 CPU-minutes each): each run is "
        "measured against their mean, and from two on their spread is the noise floor, below "
        "which a run cannot be told from retraining (default 1)",
    )
    p.add_argument("--noise_floor", action="store_true", help="--reference_seeds 2 at least")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    p.add_argument(
        "--render",
        metavar="TABLE_JSON",
        default=None,
        help="print the table of a finished run's table.json (e.g. one under "
        "benchmarks/resist/) with today's columns, and run nothing",
    )
    args = p.parse_args(argv)
    if args.reference_seeds < 1:
        p.error("--reference_seeds must be >= 1")
    if args.noise_floor:
        args.reference_seeds = max(args.reference_seeds, 2)
    args.relearn_steps, args.benign_steps, args.gap = RELEARN_STEPS, BENIGN_STEPS, True
    args.kind_flags = {}
    if args.smoke:  # the originals stand in for the references: the plumbing, not the floor
        args.gap = False  # no Avg. Gap: its probe has fixed, full-size settings (minutes)
        args.digits, args.concepts = [7], ["zero"]
        args.methods, args.samples = ["lur-resist"], 2
        args.reference = {
            "class": str(ROOT / "erase" / "assets" / "digits_ddpm"),
            "concept": str(ROOT / "erase" / "assets" / "tiny_sd"),
        }
        args.kind_flags = {"class": CLASS_SMOKE, "concept": CONCEPT_SMOKE}
        args.erase_flags = "--stop_at_erased off"
        args.attack_flags = "--num_inference_steps 2 --relearn_images 2 --relearn_batch 2"
        args.relearn_steps, args.benign_steps = [1, 2], [1, 2]
    return args


def targets(args) -> list[tuple[str, str]]:
    """(kind, name): ``class`` digits, then ``concept`` words and styles."""
    return [("class", str(d)) for d in args.digits] + [("concept", c) for c in args.concepts]


def target_flags(kind: str, name: str) -> list[str]:
    return ["--forget_class", name] if kind == "class" else ["--concept", name]


def reference_for(kind: str, name: str, args, seed: int = 0) -> str:
    """The model retrained without the target (trained into the cache on first use)."""
    if args.reference:
        return args.reference[kind] if isinstance(args.reference, dict) else args.reference
    from erase.reference import concept_reference, digits_reference

    if kind == "class":
        return str(digits_reference([int(name)], seed))
    return str(concept_reference([name], seed))


def gap_references(kind: str, name: str, args) -> list[str]:
    """The ``--reference`` folders of a run: seeds ``0..--reference_seeds-1``."""
    if not args.gap:
        return []
    return [reference_for(kind, name, args, seed) for seed in range(args.reference_seeds)]


def erase(run_dir: Path, kind: str, name: str, method: str, references: list[str], args) -> dict:
    if not (run_dir / ".complete").exists():
        flags = [*target_flags(kind, name), "--method", method, "--seed", str(args.seed)]
        flags += ["--reference", *references] if references else []
        flags += [*args.kind_flags.get(kind, []), *args.erase_flags.split()]
        flags += ["--output_dir", str(run_dir), "--overwrite"]
        script = "scripts/erase_class.py" if kind == "class" else "scripts/erase_concept.py"
        load_script(script).main(flags)
    return json.loads((run_dir / "metrics.json").read_text())


def attack(model: str, out: Path, kind: str, name: str, attack_name: str, args) -> dict:
    from robustness import attack_once

    steps = args.relearn_steps if attack_name == "relearn" else args.benign_steps
    flags = [*target_flags(kind, name), "--attack", attack_name, "--seed", str(args.seed)]
    flags += ["--relearn_steps", *map(str, steps)]
    if kind == "class":
        flags += ["--samples", str(args.samples), "--check_judge", "digits-svm"]
    else:  # images = forget prompts × seeds: at least --samples of them
        from erase.concept_reference import relearn_settings
        from erase.concepts import resolve_concept

        n_prompts = len(resolve_concept(name).forget)
        seeds = relearn_settings(name, n_prompts, args.seed, samples=args.samples)["seeds"]
        flags += ["--seeds", *map(str, seeds), "--check_judge", "embedded-svm"]
    return attack_once(model, out, [*flags, *args.attack_flags.split()])


def stop_reason(stopping) -> str:
    """Why the run ended, for the steps column: "target", "cap", "patience", "fixed budget",
    or "target at 25, floor" for a run the floor (--min_train_steps) kept training."""
    from erase.stopping import met_before_floor

    if not isinstance(stopping, dict):
        return "fixed budget"
    first = met_before_floor(stopping)
    return (
        stopping.get("reason") if first is None else f"{stopping.get('reason')} at {first}, floor"
    )


def probe_attack(measures: dict | None, steps, relearning) -> dict | None:
    """The relearn attack's figures read from a gap probe's measures (the run's or its
    reference's in ``metrics.json``): the same attack — 32 images, AdamW 1e-4, 50 judged
    samples, and the second judge on every point — so a run is not relearned twice. None when
    the probe lacks a step or the second judge, or was measured otherwise (smoke flags)."""
    from erase.attacks.curves import curve_summary

    points = [0, *steps]
    if not measures or not isinstance(relearning, dict):
        return None
    if any(measures.get(f"{k}@{s}") is None for s in points for k in ("relearn", "check")):
        return None
    curve = [
        {"steps": s, "share": measures[f"relearn@{s}"], "check_share": measures[f"check@{s}"]}
        for s in points
    ]
    return {
        "curve": curve,
        **curve_summary(curve),
        "check_max_disagreement": max(abs(p["share"] - p["check_share"]) for p in curve),
        "from": "the reference-gap probe",
    }


def probe_matches(kind: str, name: str, relearning, args) -> bool:
    """Whether the probe's settings are those the relearn attack would use here: the job's
    own probe settings for this target, seed and sample count (the steps are checked point by
    point), and no extra attack flags."""
    if not isinstance(relearning, dict) or args.attack_flags.strip():
        return False
    if kind == "class":
        from erase.class_reference import relearn_settings

        want = {**relearn_settings(int(name), args.seed), "samples": args.samples}
    else:
        from erase.concept_reference import relearn_settings
        from erase.concepts import resolve_concept

        n_prompts = len(resolve_concept(name).forget)
        want = relearn_settings(name, n_prompts, args.seed, samples=args.samples)
    return all(relearning.get(k) == v for k, v in want.items() if k != "steps")


def attacks_of(run_dir: Path, metrics: dict, kind: str, name: str, args, reference: str, ref):
    """The run's attacks, and (first time) the reference's: the relearn curves from the gap
    probe where it measured them alike; every other attack run with ``eval/attack.py``."""
    record = metrics.get("reference_gap") or {}
    relearning = record.get("relearning")
    usable = probe_matches(kind, name, relearning, args)

    def curve(a: str, measures, model: str, out: Path) -> dict:
        probed = a == "relearn" and usable
        got = probe_attack(measures, args.relearn_steps, relearning) if probed else None
        return got or attack(model, out, kind, name, a, args)

    attacks = {}
    for a in args.attacks:
        attacks[a] = curve(a, record.get("run"), str(run_dir), run_dir / f"attack-{a}")
        if a not in ref:
            out = run_dir.parent / "reference" / f"attack-{a}"
            ref[a] = curve(a, record.get("reference"), reference, out)
    return attacks


def row(target: str, method: str, metrics: dict, attacks: dict, ref_attacks: dict) -> dict:
    """One table row from a run's metrics.json, its attack.json files and the reference's."""
    stopping = metrics.get("stopping")
    reference_gap = metrics.get("reference_gap") or {}
    gap, floor = reference_gap.get("gap", {}), reference_gap.get("noise_floor", {})
    if "unlearning_accuracy" in metrics:  # the class task
        erased, kept = metrics["unlearning_accuracy"], metrics["retained_accuracy"]
        kept_before = metrics.get("before", {}).get("retained_accuracy")
    else:  # a concept: the comparison tables' erased share and kept accuracy
        from erase.concept_eval import concept_measures

        erased, kept = (concept_measures(metrics)[k] for k in ("erased", "kept"))
        kept_before = concept_measures(metrics, "before")["kept"]
    r = {
        "target": target,
        "method": method,
        "erased": erased,
        "kept": kept,
        "kept_before": kept_before,
        "trained_steps": metrics.get("trained_steps"),
        "stop_reason": stop_reason(stopping),
        "erase_seconds": metrics.get("erasure_seconds"),
        "avg_gap": gap.get("avg_gap"),
        "avg_shortfall": gap.get("avg_shortfall"),
        "noise_floor": floor.get("avg_gap"),
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
                (
                    d
                    for d in (a.get("check_max_disagreement"), ref.get("check_max_disagreement"))
                    if d is not None
                ),
                default=None,
            ),
        }
    return r


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def _shares(points) -> str:
    """The shares after step 0 of ``[(steps, share), ...]``, in %, slash-separated."""
    return "/".join(_pct(v) for s, v in points if s > 0)


def _curve(c: dict, key: str = "curve") -> str:
    return _shares(c[key])


def _gap(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _half(x) -> str:
    return "never" if x is None else f"{x:.1f}"


def _best(rl: dict) -> str:
    """The attacker's best within each budget (running maximum of the measured shares), the
    reference's beside it, and the verdict: "under" when at or under the never-learned model
    at every budget, else the budgets where it is over (``erase.attacks.curves``)."""
    from erase.attacks.curves import best_within, over_reference

    run, ref = best_within(rl["curve"]), best_within(rl["reference"])
    over = over_reference(rl["curve"], rl["reference"])
    verdict = "under" if not over else "over at " + "/".join(map(str, over))
    return f"{_shares(run)} ({_shares(ref)}) {verdict}"


def _steps(rows: list[dict], attack: str) -> str:
    curves = [r[attack]["curve"] for r in rows if r.get(attack)]
    return "/".join(str(s) for s, _ in curves[0] if s > 0) if curves else ""


def with_lur_ratio(rows: list[dict]) -> list[dict]:
    """Each row's erasure time over ``lur``'s on the same target (the cost target of issue 27:
    the resisting erasure within 3x lur's time), where ``lur`` ran and both times are known."""
    lur = {r["target"]: r["erase_seconds"] for r in rows if r["method"] == "lur"}
    for r in rows:
        base, own = lur.get(r["target"]), r["erase_seconds"]
        r["erase_x_lur"] = round(own / base, 2) if base and own is not None else None
    return rows


def table(rows: list[dict]) -> str:
    head = (
        f"| target | method | erased % (SVM) | kept % | Avg. Gap (floor) | Avg. Shortfall | steps (why) "
        f"| erase s (× lur) "
        f"| relearn back % "
        f"s={_steps(rows, 'relearn')} (reference) | best back within s % (ref) "
        f"| steps to 50 % back (ref) | benign back % "
        f"s={_steps(rows, 'benign')} (ref) | judges disagree ≤ |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        rl, bn = r.get("relearn"), r.get("benign")
        dis = [a["check_max_disagreement"] for a in (rl, bn) if a]
        dis = [d for d in dis if d is not None]
        lines.append(
            f"| {r['target']} | {r['method']} | {_pct(r['erased'])} ({_pct(r.get('check_judge_erased'))}) "
            f"| {_pct(r['kept'])} | {_gap(r.get('avg_gap'))}"
            + (f" ({_gap(r['noise_floor'])}) " if r.get("noise_floor") is not None else " ")
            + f"| {_gap(r.get('avg_shortfall'))} "
            + f"| {r.get('trained_steps')} ({r.get('stop_reason') or '-'}) "
            f"| {r.get('erase_seconds') and round(r['erase_seconds'])}"
            + (f" ({r['erase_x_lur']:.2f}) " if r.get("erase_x_lur") is not None else " ")
            + (f"| {_curve(rl)} ({_curve(rl, 'reference')}) | {_best(rl)} " if rl else "| – | – ")
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
    if args.render:
        rows = json.loads(Path(args.render).read_text())["rows"]
        rows = [{"target": r.get("digit"), **r} for r in rows]  # older tables: "digit"
        print(table(rows))
        return rows
    out = Path(args.output_dir)
    rows = []
    for kind, name in targets(args):
        reference = reference_for(kind, name, args)
        folder = out / (f"digit-{name}" if kind == "class" else f"concept-{name}")
        ref_attacks: dict = {}  # the reference's, attacked (or read from the probe) once
        for method in args.methods:
            run_dir = folder / method
            metrics = erase(run_dir, kind, name, method, gap_references(kind, name, args), args)
            attacks = attacks_of(run_dir, metrics, kind, name, args, reference, ref_attacks)
            rows.append(row(name, method, metrics, attacks, ref_attacks))
    rows = with_lur_ratio(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(
        json.dumps({**machine_record("resist.py"), "rows": rows}, indent=2)
    )
    (out / "table.md").write_text(table(rows) + "\n")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
