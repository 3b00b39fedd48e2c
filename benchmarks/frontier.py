#!/usr/bin/env python
"""Trade-off frontiers: every method's knob swept on the tuning concepts, held-out evaluation.

    python benchmarks/frontier.py --task class --output_dir runs/frontier
    python benchmarks/frontier.py --task concept --output_dir runs/frontier --dry_run
    python benchmarks/frontier.py --task all --output_dir runs/frontier   # the whole comparison

The comparison protocol of the design notes (§12), as one resumable command:

1. **Sweep** each method's trade-off knob (λ = ``--retain_weight`` for the retain-weighted
   methods, η = ``--esd_eta`` for ``esd``, s_p = ``--retain_weight`` for ``uce``, the saliency
   sparsity for ``salun``, ``--max_train_steps`` for ``ga``) on the *tuning* concepts only
   (class: digits 1, 2, 4; concept: "five", "outlined"), seed 0, with fewer evaluation samples.
2. **Choose** each method's operating point by one rule (``RULE`` below): among the knob values
   whose mean erased share over the tuning concepts is ≥ 95 %, the one with the best mean retained
   accuracy; when no value reaches 95 %, the most erased one (the table says so).
3. **Held out**: each method at its operating point on concepts never tuned on (class: digits
   0 3 5 6 8 9; concept: the digit words other than "five"/"three", the styles other than
   "outlined"/"inverted" that have a concept file — "plain" has none), 3 seeds, the erased share
   on ``--ua_samples`` (≥ 300) new images of the concept with 95 % Wilson intervals.
4. **Write** ``OUT/TASK/frontier.md``, ``frontier.json`` and ``frontier.png`` (per method the
   tuning curve erased share vs retained accuracy — and vs digits-FID for the class task — all
   methods in one figure, plus the held-out operating points); each method's erasure time is a
   column.

Jobs run ``--jobs`` at a time (default 2), each in a worker process with one torch thread;
the concept runs share one latent cache (``OUT/concept/cache``), the original model's "before"
evaluation is cached by the scripts themselves. A job whose ``result.json`` exists is skipped,
so an interrupted run resumes where it stopped. ``--dry_run`` lists every job and estimates
the wall time; ``--lur_variants`` adds second-order, two-inner-step, retain-first,
gradient-clipped, two-inner-step gradient-clipped ``lur``, and ``lur`` with the retain loss
judged at θ as well as at θ' (``lur-theta``).
``--task all`` is the whole comparison, class then concept (7.3 h on 2 cores by the measured
run times: class 4.6 h, concept 2.75 h; ``--lur_variants`` adds ≈ 3 h on the concept task and
≈ 11 h on the class task, timed from the variants' runs).

``--equal_erasure 0.95 --reference`` is the equal-erasure comparison: it
reruns the held-out concepts at the operating points the committed fixed-budget comparison
chose (``--points_from``; no sweep), every run stopped at the target and measured against its
concept's exact-unlearning reference (seed 0; seed 1 as well for the first held-out concept,
the noise floor; ``--reference_seeds K``: seeds 0..K-1 of every concept, each run measured
against their mean), on all six held-out digits and the concept task's first four held-out
concepts (``--held_out`` for others). Before the held-out runs it chooses ``lur``'s default
form (``--choose_lur_form``, ``_lur_form.FORM_RULE``): plain ``lur`` and its six variants on the
tuning concepts, seed 0, stopped at the target and judged on ``--ua_samples`` new images (a
fixed check set can be off for a whole run: whether a form reached the target is read from
those); the chosen form joins the held-out methods when it is a variant. From a fresh cache
the dry run's model puts it at ≈ 9.4 h on 2 cores (12 references, 2.2 h of it; the forms
0.8 h), counting each run at its fixed budget's steps; digit 8, which runs to the cap, can add
up to an hour. Once jobs have run, it times the rest from
their CPU seconds (``job_cpu_seconds``; results written before it was kept give wall seconds,
which grow with whatever shared the cores: the concept task's first runs, three or four to 2
cores, put the rest at 11.9 h). Whether the whole comparison fits one night on idle cores is
not measured yet.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
for _p in (str(ROOT), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _frontier_report import (  # noqa: E402
    ERASED_TARGET,
    RULE,
    UA_SEED,
    _fmt_value,
    choose,
    heldout_steplog_table,
    heldout_summary,
    plot,
    shown_path,
    sweep_curves,
    write_tables,
)
from _head_to_head import head_to_head  # noqa: E402
from _lur_form import FORM_RULE, choose_form, form_section, summarise  # noqa: E402
from _reference_table import gap_numbers, reference_table  # noqa: E402
from _scripts import CLASS_SMOKE, CONCEPT_SMOKE, SMOKE_HELP  # noqa: E402

TASKS = ("class", "concept")
TUNING = {"class": ["1", "2", "4"], "concept": ["five", "outlined"]}
HELD_OUT = {
    "class": ["0", "3", "5", "6", "8", "9"],
    # every digit word but five/three, every style with a concept file but outlined/inverted;
    # the styles come early so that a comparison stopped part-way has both kinds
    "concept": ["zero", "thick", "one", "striped", "two", "four", "six", "seven", "eight", "nine"],
}
# knob name → the flag it sets
KNOBS = {
    "lambda": "--retain_weight",
    "s_p": "--retain_weight",
    "eta": "--esd_eta",
    "sparsity": "--saliency_sparsity",
    "steps": "--max_train_steps",
}
LAMBDA = {"class": [0.25, 0.5, 1.0, 2.0], "concept": [0.3, 1.0, 3.0, 10.0]}
# label → (the script's --method, extra flags, knob). "lur" and its variants but one are the
# paper's order, pinned: the forms comparison chose --meta_order retain_first as lur's default
# afterwards, and the label keeps meaning what its committed runs measured.
FORGET_FIRST = ["--meta_order", "forget_first"]
_SHARED = {
    "lur": ("lur", FORGET_FIRST, "lambda"),
    "joint": ("joint", [], "lambda"),
    "pcgrad": ("pcgrad", [], "lambda"),
    "salun": ("salun", [], "sparsity"),
    "esd": ("esd", [], "eta"),
    "ga": ("ga", [], "steps"),
}
METHODS = {  # the concept task adds the methods only text-to-image models have
    "class": _SHARED,
    "concept": {
        **_SHARED,
        "uce": ("uce", [], "s_p"),
        "ca": ("ca", [], "lambda"),
        "ca-noise": ("ca-noise", [], "lambda"),
    },
}
LUR_VARIANTS = {
    "lur-2nd": ("lur", [*FORGET_FIRST, "--meta_mode", "second_order"], "lambda"),
    "lur-k2": ("lur", [*FORGET_FIRST, "--inner_steps", "2"], "lambda"),
    "lur-retain-first": ("lur", ["--meta_order", "retain_first"], "lambda"),
    # lur's first steps have gradient norms of 5-6 against a median of 0.9, and lur-k2's one
    # collapse came with a peak of 188; diffusers' training examples clip at 1.0, lur by
    # default does not (held out, clipping lifts lur's erasure but not to joint's)
    "lur-clip": ("lur", [*FORGET_FIRST, "--max_grad_norm", "1"], "lambda"),
    # lur-k2's gradients agree with each other late, as joint's do, and its one collapse was a
    # spike that filled Adam's second moment (benchmarks/step_dynamics.py): clip it
    "lur-k2-clip": ("lur", [*FORGET_FIRST, "--inner_steps", "2", "--max_grad_norm", "1"], "lambda"),
    # lur's retain loss at the weights it hands over rises over training while joint's falls,
    # and its forget gradient opposes the look-ahead retain gradient: judge retention at θ too
    # (J = L_f(θ) + λ L_r(θ') + 1·L_r(θ); λ₀ fixed at 1 while λ is swept)
    "lur-theta": ("lur", [*FORGET_FIRST, "--retain_weight_at_theta", "1"], "lambda"),
}
# the forms --choose_lur_form compares: plain lur and each variant
LUR_FORMS = {"lur": _SHARED["lur"], **LUR_VARIANTS}
GRIDS = {
    "class": {
        "lambda": LAMBDA["class"],
        "sparsity": [0.3, 0.5, 0.7, 0.9],
        "eta": [0.25, 0.5, 1.0, 2.0],
        "steps": [10, 25, 50, 100],
    },
    "concept": {
        "lambda": LAMBDA["concept"],
        "s_p": [0.1, 0.3, 1.0, 3.0, 10.0],
        "sparsity": [0.3, 0.5, 0.7, 0.9],
        "eta": [0.5, 1.0, 2.0, 4.0],
        "steps": [10, 25, 50, 100],
    },
}
# evaluation flags: fewer samples while sweeping, the scripts' defaults held out
SWEEP_EVAL = {
    "class": ["--eval_samples_per_class", "20"],
    "concept": ["--eval_images_per_class", "20"],
}
HELDOUT_EVAL = {"class": [], "concept": []}

# Seconds per job on one thread of the 2-core machine, fitted to the committed comparison's
# measured held-out job times (benchmarks/frontier/*/heldout: class lur 249 s, joint 241, esd
# 216, ga 129; concept lur 82, joint 75, ga 54; two short timing runs on a loaded machine had
# put them 1.5-1.8x higher). ``--dry_run`` scales them to each job; finished jobs in the output
# folder replace them with their own measured times.
TIMING = {
    "class": {"startup": 10.0, "step": 0.68, "eval_per_image": 0.2, "ua_per_image": 0.12},
    "concept": {"startup": 8.0, "step": 0.25, "eval_per_image": 0.055, "ua_per_image": 0.055},
}
DEFAULT_STEPS = {"class": 150, "concept": 100}
# the concept task's held-out concepts at equal erasure: each needs a reference (~25 CPU-min)
NIGHT_CONCEPTS = 4
# one exact-unlearning reference on one core (benchmarks/resist: the digits DDPM without 6,
# seeds 0 and 1: 1517 and 1527 s; the tiny world without "zero" or "thick": 1536 s each)
REFERENCE_SECONDS = {"class": 1520.0, "concept": 1540.0}
# a closed-form edit draws nothing at random and every evaluation seed is fixed: a second seed
# reruns the same model on the same images, and pooling both would count each image twice
SEED_FREE = {"uce"}
DEFAULT_EVAL = {"class": 50, "concept": 40}
# per-step cost relative to lur (benchmarks/step_cost.py, CPU time)
STEP_FACTOR = {
    "lur": 1.0,
    "joint": 0.95,
    "pcgrad": 0.95,
    "salun": 0.95,
    "esd": 0.6,
    "ga": 0.4,
    "uce": 0.0,
    "ca": 0.7,
    "ca-noise": 0.7,
    "lur-2nd": 2.1,
    "lur-k2": 1.5,
    "lur-retain-first": 1.0,
    "lur-clip": 1.0,
    "lur-k2-clip": 1.5,
    "lur-theta": 1.3,
}


def parse_args(argv=None, task: str | None = None):
    """``task`` runs one task of ``--task all``: its methods are those of ``--methods`` that
    the task has."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument(
        "--task",
        choices=["class", "concept", "all"],
        default="class",
        help="all: the class comparison, then the concept one (the whole comparison)",
    )
    p.add_argument("--output_dir", default="runs/frontier")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="run only these (labels); the report still covers every method's runs on disk",
    )
    p.add_argument(
        "--lur_variants",
        action="store_true",
        help="also lur-2nd (--meta_mode second_order), lur-k2 (--inner_steps 2), "
        "lur-retain-first (--meta_order retain_first), lur-clip (--max_grad_norm 1), "
        "lur-k2-clip (both) and lur-theta (--retain_weight_at_theta 1), each on the λ grid",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="held-out seeds")
    p.add_argument(
        "--ua_samples",
        type=int,
        default=300,
        help="new images per concept judged for the erased share of the held-out runs and of "
        "lur's forms (the form rule reads whether a form reached the target from them)",
    )
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument(
        "--relearn_steps",
        type=int,
        default=10,
        help="robustness column of the held-out runs: the share of the concept back after this "
        "many relearning steps (eval/attack.py --attack relearn, 32 images); 0 leaves it out",
    )
    p.add_argument(
        "--equal_erasure",
        type=float,
        default=None,
        help="compare at equal erasure: every run stops once its judge sees this share of the "
        "concept erased (e.g. 0.95; the cap is 4x the budget), with the steps, seconds and "
        "whether it got there as columns (use its own --output_dir)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="with --equal_erasure: each held-out run measured against the model retrained "
        "without its concept (class: the digits DDPM without the digit; concept: the tiny "
        "world without the word's or style's images and prompts; --reference_seeds of them, "
        "and at least two for the first held-out concept: the noise floor; ~25 CPU-min each, "
        "trained first, --jobs at a time, and cached): the Avg. Gap column",
    )
    p.add_argument(
        "--reference_seeds",
        type=int,
        default=1,
        help="with --reference: retrainings per held-out concept (seeds 0..K-1); each run is "
        "measured against their per-measure mean, and their spread is the noise floor "
        "(default 1: one retraining, two for the first held-out concept)",
    )
    p.add_argument(
        "--points_from",
        default=None,
        help="take each method's operating point from this finished comparison's "
        "TASK/frontier.json instead of sweeping (default with --equal_erasure: the committed "
        "fixed-budget comparison, benchmarks/frontier; none: sweep again)",
    )
    p.add_argument(
        "--choose_lur_form",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --equal_erasure (on by default there): first run lur and its six variants "
        "on the tuning concepts, seed 0, each at its operating point from --points_from and "
        "stopped at the target; the rule in the report picks lur's default form, and the "
        "held-out runs add it when it is not plain lur",
    )
    p.add_argument(
        "--held_out",
        nargs="+",
        default=None,
        help="only these held-out concepts (default: every one; with --equal_erasure on the "
        f"concept task the first {NIGHT_CONCEPTS}, two words and two styles, so that "
        "the whole comparison fits a night)",
    )
    p.add_argument("--dry_run", action="store_true", help="list the jobs and estimate the time")
    p.add_argument(
        "--report_only",
        action="store_true",
        help="run nothing: write the tables and plot from the runs finished so far (a partial "
        "comparison says how many runs are still missing)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help=SMOKE_HELP + " (one tuning and one held-out concept, 2 knob values, 1 seed)",
    )
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="flags for every run")
    args = p.parse_args(argv)
    if args.ua_samples < 1 or args.jobs < 1 or args.relearn_steps < 0:
        p.error("--ua_samples and --jobs must be >= 1, --relearn_steps >= 0")
    if args.reference_seeds < 1 or (args.reference_seeds > 1 and not args.reference):
        p.error("--reference_seeds K needs --reference and K >= 1")
    every_task = args.task == "all"
    if every_task and task is None:
        known = {m for t in TASKS for m in METHODS[t]} | set(LUR_VARIANTS)
        unknown = set(args.methods or []) - known
        if unknown:
            p.error(f"unknown --methods {sorted(unknown)}; choose from {', '.join(sorted(known))}")
        return args
    args.task = task or args.task
    args.tuning, args.held_out = TUNING[args.task], _held_out(args, p)
    args.points_from = _points_from(args)
    labels = dict(METHODS[args.task])
    if args.lur_variants:
        labels.update(LUR_VARIANTS)
    args.all_labels = dict(labels)
    if args.methods:
        unknown = set() if every_task else set(args.methods) - set(labels)
        if unknown:
            p.error(f"unknown --methods {sorted(unknown)}; choose from {', '.join(labels)}")
        labels = {k: v for k, v in labels.items() if k in args.methods}
    args.labels = labels
    args.choose_lur_form = _choose_lur_form(args, p)
    args.grids = dict(GRIDS[args.task])
    args.sweep_eval, args.heldout_eval = SWEEP_EVAL[args.task], HELDOUT_EVAL[args.task]
    if args.smoke:
        args.tuning, args.held_out = args.tuning[:1], args.held_out[:1]
        args.seeds, args.ua_samples = [0], 4
        # two values a knob, chosen to differ; ga's steps stay smoke-sized
        args.grids = {k: [v[0], v[-1]] for k, v in args.grids.items()}
        args.grids["steps"] = [1, 2]
        smoke = CLASS_SMOKE if args.task == "class" else CONCEPT_SMOKE
        args.extra = smoke + args.extra
        args.sweep_eval = args.heldout_eval = []
        args.relearn_steps = min(args.relearn_steps, 2)
    return args


def _held_out(args, p) -> list[str]:
    """``--held_out`` (those of this task), else every held-out concept; at equal erasure the
    concept task's first ``NIGHT_CONCEPTS`` (its references cost ~25 CPU-minutes each)."""
    every = HELD_OUT[args.task]
    if args.held_out:
        unknown = [c for c in args.held_out if c not in sum(HELD_OUT.values(), [])]
        if unknown:
            p.error(f"--held_out {unknown} are not held out; choose from {HELD_OUT}")
        return [c for c in args.held_out if c in every]
    if args.equal_erasure and args.task == "concept":
        return every[:NIGHT_CONCEPTS]
    return list(every)


def _choose_lur_form(args, p) -> bool:
    """Whether this run chooses lur's default form: asked for, or by default at equal erasure
    when lur is among the methods; its forms' operating points come from ``--points_from``."""
    wanted = args.choose_lur_form
    if wanted is None:
        return bool(args.equal_erasure and args.points_from and "lur" in args.labels)
    if wanted and not (args.equal_erasure and args.points_from):
        p.error(
            "--choose_lur_form compares lur's forms at equal erasure, at the operating points "
            "of a finished comparison: give --equal_erasure P and leave --points_from on"
        )
    return wanted


def _points_from(args) -> Path | None:
    """The frontier.json whose operating points replace the sweep, or None (sweep)."""
    src = args.points_from
    if src is None and args.equal_erasure and not args.smoke:
        src = str(BENCH / "frontier")
    if src is None or src.lower() == "none":
        return None
    return Path(src) / args.task / "frontier.json"


def points_from_file(path: Path, labels: dict) -> tuple[dict, dict]:
    """(curves, points) read from a finished comparison: the sweep it ran and the operating
    point it chose for each of ``labels``; a clear error for a missing file or method."""
    if not path.is_file():
        sys.exit(
            f"--points_from: {path} does not exist; give a folder of a finished comparison "
            "(python benchmarks/frontier.py --output_dir DIR) or none to sweep"
        )
    record = json.loads(path.read_text())
    points = record.get("operating_points") or {}
    missing = [label for label in labels if label not in points]
    if missing:
        sys.exit(
            f"--points_from: {path} has no operating point for {missing}; run its sweep for "
            "them, leave them out of --methods, or pass --points_from none"
        )
    curves = {k: v for k, v in (record.get("sweep") or {}).items() if k in labels}
    return curves, {label: points[label] for label in labels}


# -- jobs ---------------------------------------------------------------------------------------


def make_job(args, out: Path, phase: str, label: str, concept: str, value, seed: int) -> dict:
    method, flags, knob = args.labels.get(label) or LUR_FORMS[label]
    tag = f"{concept}-{label}-{knob}{_fmt_value(value)}-seed{seed}"
    run_dir = out / phase / tag
    target = ["--forget_class", concept] if args.task == "class" else ["--concept", concept]
    argv = [*target, "--method", method, *flags, "--seed", str(seed)]
    argv += ["--output_dir", str(run_dir), "--overwrite"]
    # the frontier compares methods at a fixed budget, or (--equal_erasure P) each run stopped
    # when its judge sees P of the concept erased, capped at 4x the budget
    argv += ["--stop_at_erased", str(args.equal_erasure) if args.equal_erasure else "off"]
    if args.equal_erasure and phase == "heldout" and args.reference:
        # seeds 0 .. K-1 of the concept's reference (the run is measured against their mean);
        # the first held-out concept has at least two: the noise floor
        argv += ["--reference", *["auto"] * reference_seeds(args, concept)]
    if args.task == "concept":
        argv += ["--cache_dir", str(out / "cache")]
    argv += [*args.extra, *(args.heldout_eval if phase == "heldout" else args.sweep_eval)]
    argv += [KNOBS[knob], _fmt_value(value)]
    return {
        "task": args.task,
        "phase": phase,
        "label": label,
        "knob": knob,
        "value": value,
        "concept": concept,
        "seed": seed,
        "run_dir": str(run_dir),
        "argv": argv,
        "ua_samples": args.ua_samples if phase in ("heldout", "forms") else 0,
        "relearn_steps": args.relearn_steps if phase == "heldout" else 0,
        "smoke": args.smoke,
    }


def sweep_jobs(args, out: Path) -> list[dict]:
    jobs = []
    for label, (_, _, knob) in args.labels.items():
        for value in args.grids[knob]:
            for concept in args.tuning:
                jobs.append(make_job(args, out, "sweep", label, concept, value, 0))
    return jobs


def form_jobs(args, out: Path) -> list[dict]:
    """lur and its variants on the tuning concepts at equal erasure (seed 0, the sweep's fewer
    evaluation samples), each at the operating point ``--points_from`` gives it."""
    if not args.choose_lur_form:
        return []
    points = points_from_file(args.points_from, LUR_FORMS)[1]
    return [
        make_job(args, out, "forms", form, concept, points[form]["value"], 0)
        for concept in args.tuning
        for form in LUR_FORMS
    ]


def run_forms(args, out: Path, pool, points: dict) -> list[dict]:
    """The forms' runs, the rule's choice (kept on ``args``), and the chosen form added to the
    held-out methods when it is a variant; returns the jobs."""
    jobs = form_jobs(args, out)
    costs = {form: STEP_FACTOR[form] for form in LUR_FORMS}
    results = run_all(jobs, pool) if jobs else []
    args.form_rows = summarise(results, costs, args.tuning, args.equal_erasure) if jobs else {}
    args.form = choose_form(args.form_rows)
    if args.form and args.form not in args.labels:
        args.labels[args.form] = LUR_FORMS[args.form]
        points[args.form] = points_from_file(args.points_from, {args.form: None})[1][args.form]
    return jobs


def heldout_jobs(args, out: Path, points: dict) -> list[dict]:
    """Seed by seed, and within a seed concept by concept: a run stopped part-way has compared
    every method on the same held-out concepts rather than a few methods on all of them.
    A method whose result does not depend on the seed runs once, with the first seed."""
    return [
        make_job(args, out, "heldout", label, concept, points[label]["value"], seed)
        for seed in args.seeds
        for concept in args.held_out
        for label in args.labels
        if seed == args.seeds[0] or args.labels[label][0] not in SEED_FREE
    ]


def reference_seeds(args, concept: str) -> int:
    """How many references a held-out concept's runs measure against: ``--reference_seeds``,
    at least two for the first held-out concept (the noise floor)."""
    k = getattr(args, "reference_seeds", 1)
    return max(k, 2) if concept == args.held_out[0] else k


def reference_specs(args) -> list[dict]:
    """The exact-unlearning references the held-out runs of ``--equal_erasure --reference``
    measure against (seeds ``0..reference_seeds(concept)-1`` of every held-out concept), with
    whether each is cached."""
    if not (args.equal_erasure and args.reference) or args.smoke:
        return []
    from erase.reference import _trained, concept_reference_path, digits_reference_path

    specs = []
    for concept in args.held_out:
        for seed in range(reference_seeds(args, concept)):
            path = (
                digits_reference_path([int(concept)], seed)
                if args.task == "class"
                else concept_reference_path([concept], seed)
            )
            specs.append(
                {"task": args.task, "concept": concept, "seed": seed, "cached": _trained(path)}
            )
    return specs


def with_stored_references(result: dict, args, out: Path) -> dict:
    """A held-out concept result brought up to its concept's references as they are measured
    now: each seed ``0..reference_seeds-1`` whose measures under this run's probe settings are
    stored (by a run, or ``reference_spread.py``) replaces the result's copy or, where the
    result had fewer references (``--reference_seeds`` raised since), joins it; the gap is
    recomputed against their mean, in its ``result.json`` too. The run's own measures are as
    they were, so this is what rerunning it would give. A result missing a seed that is not
    stored either stays as it is, as do the class task's (their references are measured with
    the run's own evaluation)."""
    if args.task != "concept" or "error" in result or not result.get("gap_reference"):
        return result
    from _reference_table import kept_measures, references_of_result

    from erase.concept_reference import measure_settings, relearn_settings
    from erase.concepts import resolve_concept
    from erase.reference import concept_reference_path
    from erase.reference_gap import gap_record, stored_measures

    job = result["job"]
    have = references_of_result(result)
    n_prompts = len(resolve_concept(job["concept"]).forget)
    relearn = relearn_settings(job["concept"], n_prompts, job["seed"])
    settings = measure_settings(DEFAULT_EVAL["concept"], relearn)
    refs = []
    for seed in range(max(reference_seeds(args, job["concept"]), len(have))):
        stored = stored_measures(concept_reference_path([job["concept"]], seed), settings)
        if stored is None and seed >= len(have):
            return result
        refs.append(have[seed] if stored is None else kept_measures(stored))
    if refs == have:
        return result
    record = gap_record(result["gap_run"], refs)
    updated = {**result, **gap_numbers({"reference_gap": record})}
    from erase.io import atomic_write_json

    atomic_write_json(out / "heldout" / Path(job["run_dir"]).name / "result.json", updated)
    return updated


def _or_error(work):
    """``(work(), None)``, or ``(None, "Type: message")`` if it raised: a worker's job reports
    its failure instead of raising, so one failed job does not end the others (SystemExit from
    the scripts' error handler included; Ctrl-C still stops everything)."""
    try:
        return work(), None
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, f"{type(exc).__name__}: {exc}"


def train_reference(spec: dict) -> dict:
    """One reference into the cache (a worker's job); ``{"error": ...}`` instead of raising."""
    from erase.reference import concept_reference, digits_reference

    def train():
        if spec["task"] == "class":
            return digits_reference([int(spec["concept"])], spec["seed"], progress=False)
        return concept_reference([spec["concept"]], spec["seed"])

    t0 = time.perf_counter()
    path, error = _or_error(train)
    if error:
        return {**spec, "error": error}
    return {**spec, "path": str(path), "seconds": round(time.perf_counter() - t0, 1)}


def train_references(args, pool) -> None:
    """Every missing reference, ``--jobs`` at a time, before the held-out runs: run beside each
    other, two runs of one concept would each train its reference (twice the time, one folder)."""
    todo = [s for s in reference_specs(args) if not s["cached"]]
    if not todo or pool is None:
        return
    minutes = REFERENCE_SECONDS[args.task] / 60
    print(
        f"training {len(todo)} exact-unlearning references first (~{minutes:.0f} min each on "
        f"one core, {args.jobs} at a time)",
        flush=True,
    )
    for k, r in enumerate(pool.map(todo, train_reference), 1):
        what = f"{r['concept']} seed {r['seed']}"
        status = f"FAILED {r['error']}" if "error" in r else f"{r['seconds']:.0f} s"
        print(f"[reference {k}/{len(todo)}] {what}: {status}", flush=True)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _done(job: dict) -> bool:
    """A job is done when its result is written, with its many-image UA where it wants one (a
    run finished before the forms measured it is only re-measured: ``run_job`` skips the
    training of a complete run folder)."""
    path = Path(job["run_dir"]) / "result.json"
    if not path.is_file():
        return False
    return not job.get("ua_samples") or "ua_n" in (_read_json(path) or {})


def _exit_with_parent(parent: int, every: float = 2.0) -> None:
    """A worker whose frontier process is gone stops: killed alone, the parent would otherwise
    leave its workers running the jobs already queued to them, next to a restarted frontier
    and into the same run folders."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker_init(parent: int | None = None) -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    if parent is not None:
        _exit_with_parent(parent)


def run_job(job: dict) -> dict:
    """One erasure (skipped when finished), its numbers and, held out, its many-sample UA.
    Runs in a worker process; returns the result or ``{"error": ...}`` instead of raising."""
    run_dir = Path(job["run_dir"])

    def measure() -> dict:
        if not (run_dir / ".complete").exists():
            if job["task"] == "class":
                from erase.cli.erase_class import main
            else:
                from erase.cli.erase_concept import main
            main(job["argv"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        row = {**numbers(job["task"], metrics), "steplog": steplog_summary(run_dir)}
        if job["ua_samples"]:
            missed, n = many_sample_ua(job, job["ua_samples"])
            row.update(ua_missed=missed, ua_n=n, erased=missed / n)
        if job.get("relearn_steps"):
            row.update(gap_probe_share(metrics, job["relearn_steps"]) or relearn_share(job))
        return row

    previous = _read_json(run_dir / "result.json") if (run_dir / ".complete").exists() else None
    t0, cpu0 = time.perf_counter(), time.process_time()
    row, error = _or_error(measure)
    if error:
        return {"job": job, "error": error}
    result = {"job": job, **row, "job_seconds": round(time.perf_counter() - t0, 1)}
    # the worker's one thread: what the job costs whatever else shares the cores (the dry run
    # times the rest from it; wall seconds grow with the load)
    result["job_cpu_seconds"] = round(time.process_time() - cpu0, 1)
    if previous and "job_cpu_seconds" in previous:  # a finished run only measured again
        result["remeasured_cpu_seconds"] = result["job_cpu_seconds"]
        result.update({k: previous[k] for k in ("job_seconds", "job_cpu_seconds")})
    from erase.io import atomic_write_json

    atomic_write_json(run_dir / "result.json", result)
    return result


def numbers(task: str, m: dict) -> dict:
    """Erased share, retained accuracy (and FID) of one run's own metrics."""
    if task == "class":
        return {
            "erased": m["unlearning_accuracy"],
            "retained": m["retained_accuracy"],
            "fid": m["fid_remaining"],
            "seconds": m["erasure_seconds"],
            **stop_numbers(m),
        }
    from erase.concept_eval import concept_measures

    c = concept_measures(m)
    return {
        "erased": c["erased"],
        "retained": c["kept"],  # the rest of the world: other digits' and styles', averaged
        "other_digits": c["other_digits"],
        "other_styles": c["other_styles"],
        "fid": None,
        "seconds": m.get("erasure_seconds", float("nan")),
        **stop_numbers(m),
    }


def stop_numbers(m: dict) -> dict:
    """Steps trained, whether the stopping target was met, and the Avg. Gap to the reference
    (equal-erasure runs); nothing for fixed-budget runs."""
    stop = m.get("stopping")
    if not isinstance(stop, dict):
        return {}
    return {
        "steps": m.get("trained_steps"),
        "reached": stop["reached"],
        "avg_gap": None,
        "avg_shortfall": None,
        **gap_numbers(m),
    }


def steplog_summary(run_dir: Path) -> dict | None:
    """What the run's step log says about its gradients: cos(∇L_f, ∇L_r) at θ (every step for
    the other methods, every ``--monitor_every`` steps for ``lur``) and the share of those steps
    where the two oppose; for ``lur`` also the cosine with the retain gradient after the
    look-ahead (θ'), over the first and the second half of training; the mean norm of the
    gradient stepped on, and its largest value; the losses over the last 20 steps, and the
    retain loss at θ over the first and the last third. ``None`` without a step log
    (``uce``)."""
    path = Path(run_dir) / "step_log.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())
    if not rows:
        return None

    def mean(key, part):
        xs = [r[key] for r in part if isinstance(r.get(key), (int, float)) and r[key] == r[key]]
        return statistics.mean(xs) if xs else None

    half, third = len(rows) // 2, max(len(rows) // 3, 1)
    # lur (any --meta_mode) logs a loss after the look-ahead, and then "cos" is taken at θ'
    # and, every --monitor_every steps of the first-order mode, "cos_at_theta" at θ
    lookahead = any(k.startswith("loss_") and k.endswith("_lookahead") for r in rows for k in r)
    theta_key = "cos_at_theta" if lookahead else "cos"
    at_theta = [r[theta_key] for r in rows if isinstance(r.get(theta_key), (int, float))]
    return {
        "steps": len(rows),
        "cos_theta": statistics.mean(at_theta) if at_theta else None,
        "cos_theta_negative_share": (
            sum(c < 0 for c in at_theta) / len(at_theta) if at_theta else None
        ),
        "cos_lookahead_first_half": mean("cos", rows[:half]) if lookahead else None,
        "cos_lookahead_second_half": mean("cos", rows[half:]) if lookahead else None,
        "grad_norm": mean("grad_norm", rows),
        "grad_norm_forget": mean("grad_norm_forget", rows),
        "grad_norm_retain": mean("grad_norm_retain", rows),
        "loss_forget_end": mean("loss_forget", rows[-20:]),
        "loss_retain_end": mean("loss_retain_lookahead", rows[-20:])
        or mean("loss_retain", rows[-20:]),
        # the retain loss at θ, the weights handed over (lur logs it on its monitor steps):
        # lur judges retention at θ', so nothing in its objective holds this one
        "loss_retain_theta_first_third": mean("loss_retain", rows[:third]),
        "loss_retain_theta_last_third": mean("loss_retain", rows[-third:]),
        "grad_norm_max": max(
            (r["grad_norm"] for r in rows if isinstance(r.get("grad_norm"), (int, float))),
            default=None,
        ),
    }


def many_sample_ua(job: dict, n: int) -> tuple[int, int]:
    """(images not judged as the erased concept, images) over ``n`` new images of it."""
    import torch

    run_dir = Path(job["run_dir"])
    if job["task"] == "class":
        from forget_ua import forget_ua

        from erase.embedded.classifier import load_digits_classifier
        from erase.generators import load_generator

        cfg = json.loads((run_dir / "erase_config.json").read_text())
        gen = load_generator(run_dir, classes=True)
        torch.manual_seed(0)
        _, missed = forget_ua(gen.unet, gen.scheduler, load_digits_classifier(), cfg, n)
        return missed, n * len(cfg["forget_class"])
    from erase.embedded.judge import judge_images
    from erase.embedded.styles import DIGIT_WORDS, STYLES
    from erase.embedded.tiny_sd import generate
    from erase.generators import load_generator

    gen = load_generator(run_dir)
    concept = job["concept"]
    seeds = [UA_SEED + i for i in range(n)]
    if concept in DIGIT_WORDS:
        prompts = [f"a handwritten digit {concept}"] * n
        want, head = DIGIT_WORDS.index(concept), 0
    else:
        prompts = [
            f"a handwritten digit {DIGIT_WORDS[k % 10]} in {concept} style" for k in range(n)
        ]
        want, head = STYLES.index(concept), 1
    x = generate(gen.pipe, prompts, seeds, output_type="pt")
    pred = judge_images(x)[head]
    return int((pred != want).sum()), n


def gap_probe_share(metrics: dict, steps: int) -> dict | None:
    """The robustness column from the run's own gap probe, where ``--reference`` measured it:
    the same relearning attack (32 images, AdamW 1e-4) with at least as many judged images, so
    equal-erasure runs do not relearn twice. None where the probe has no point at ``steps``."""
    record = metrics.get("reference_gap") or {}
    run, settings = record.get("run") or {}, record.get("relearning")
    if not isinstance(settings, dict) or None in (
        run.get("relearn@0"),
        run.get(f"relearn@{steps}"),
    ):
        return None
    return {
        "relearn_before": run["relearn@0"],
        "relearned": run[f"relearn@{steps}"],
        "relearn_n": settings.get("samples"),  # concepts: prompts × seeds, not recorded here
        "relearn_from": "the reference-gap probe",
    }


def relearn_share(job: dict) -> dict:
    """The robustness column: ``eval/attack.py RUN --attack relearn`` (its defaults: 32 images,
    lr 1e-4; 50 judged class samples, or the first 5 forget prompts × seeds 0 and 1) stopped
    after ``relearn_steps`` steps; the share of judged images that show the concept again,
    before and after. Run through ``robustness.attack_run``, like the comparison benchmarks'
    ``--attacks``; always afresh, since the job that asks for it is being (re)computed."""
    import shutil

    from robustness import attack_run

    run_dir, steps = Path(job["run_dir"]), job["relearn_steps"]
    cls = job["task"] == "class"
    target = ["--forget_class" if cls else "--concept", job["concept"]]
    extra = ["--relearn_steps", str(steps)]
    extra += [] if cls or job.get("smoke") else ["--max_prompts", "5"]
    shutil.rmtree(run_dir / "attack-relearn", ignore_errors=True)
    result = attack_run(run_dir, "relearn", target, 0, bool(job.get("smoke")), extra)
    curve = {p["steps"]: p["share"] for p in result["curve"]}
    return {"relearn_before": curve[0], "relearned": curve[steps], "relearn_n": result["n"]}


class Pool:
    """``workers`` one-thread worker processes, started at the first job and kept for every
    phase (a worker pays its imports once)."""

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None

    def map(self, jobs: list, fn=None):
        from concurrent.futures import as_completed

        if self.pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
            ctx = mp.get_context("spawn")
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
            )
        futures = [self.pool.submit(fn or run_job, j) for j in jobs]
        for fut in as_completed(futures):
            yield fut.result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


def _read_result(run_dir: Path) -> dict:
    """A finished job's result. While the run's step log and metrics are still there their
    summaries are taken afresh (results written by an older summary are brought up to date);
    a checkout that holds only ``result.json`` keeps the stored one."""
    result = json.loads((run_dir / "result.json").read_text())
    fresh = {}
    if (run_dir / "step_log.json").is_file():
        fresh["steplog"] = steplog_summary(run_dir)
    if (run_dir / "metrics.json").is_file():
        fresh.update(stop_numbers(json.loads((run_dir / "metrics.json").read_text())))
    if any(result.get(k) != v for k, v in fresh.items()):
        from erase.io import atomic_write_json

        result.update(fresh)
        atomic_write_json(run_dir / "result.json", result)
    return result


def run_all(jobs: list[dict], pool: Pool) -> list[dict]:
    """Every job on ``pool``; finished ones are read back instead of run."""
    results, todo = [], []
    for j in jobs:
        if _done(j):
            results.append(_read_result(Path(j["run_dir"])))
        else:
            todo.append(j)
    if todo and pool is not None:
        for k, r in enumerate(pool.map(todo), 1):
            j = r["job"]
            name = Path(j["run_dir"]).name
            if "error" in r:
                print(f"[{k}/{len(todo)}] {name}: FAILED {r['error']}", flush=True)
            else:
                print(
                    f"[{k}/{len(todo)}] {name}: erased {100 * r['erased']:.1f} % retained "
                    f"{100 * r['retained']:.1f} % ({r['job_seconds']:.0f} s)",
                    flush=True,
                )
            results.append(r)
    return results


# -- the estimate -------------------------------------------------------------------------------


def _steps(job: dict) -> int:
    argv = job["argv"]
    idx = [i for i, a in enumerate(argv) if a == "--max_train_steps"]
    return int(float(argv[idx[-1] + 1])) if idx else DEFAULT_STEPS[job["task"]]


def estimate_job(job: dict, measured: dict) -> float:
    """Seconds for one job: measured times of finished jobs of the same phase and method in the
    output folder when there are any, else the ``TIMING`` model."""
    key = (job["phase"], job["label"])
    if key in measured:
        return statistics.mean(measured[key])
    t = TIMING[job["task"]]
    label = job["label"]
    samples = DEFAULT_EVAL[job["task"]] if job["phase"] == "heldout" else 20
    classes = 10 if job["task"] == "class" else 15  # judged classes per evaluation
    train = t["step"] * STEP_FACTOR.get(label, 1.0) * _steps(job)
    evaluation = t["eval_per_image"] * samples * classes
    argv = job["argv"]
    if argv[argv.index("--stop_at_erased") + 1] != "off":  # 32 samples every 25 steps, and
        evaluation += (_steps(job) / 25 + 1) * 32 * t["eval_per_image"]  # one confirming set
    if "--reference" in argv:  # the gap probe: 20 relearning steps, 4 points of 50 samples
        evaluation += 20 * t["step"] + 4 * 50 * t["eval_per_image"]
    return t["startup"] + train + evaluation + t["ua_per_image"] * job["ua_samples"]


def listed_points(args, sweep: list[dict]) -> dict:
    """Each method's knob value for the dry run's listing: from ``--points_from``; else the
    rule's choice once the method's sweep has finished, its grid's middle until then."""
    if args.points_from:
        print(f"operating points from {shown_path(args.points_from)}: no sweep")
        return points_from_file(args.points_from, args.labels)[1]
    points = {
        lab: {"value": args.grids[k][len(args.grids[k]) // 2]}
        for lab, (_, _, k) in args.labels.items()
    }
    finished = {lab for lab in args.labels if all(_done(j) for j in sweep if j["label"] == lab)}
    curves = sweep_curves(run_all([j for j in sweep if j["label"] in finished], None), args.labels)
    for lab in finished:
        chosen = choose(curves.get(lab, []))
        if chosen is not None:
            points[lab] = chosen
    return points


def dry_run(args, out: Path) -> tuple[float, float]:
    """Lists the jobs and prints the time estimate; returns the seconds of work in all and
    left (one thread)."""
    sweep = [] if args.points_from else sweep_jobs(args, out)
    forms = form_jobs(args, out)
    points = listed_points(args, sweep)
    if forms and all(_done(j) for j in forms):  # the chosen form joins the held-out runs
        run_forms(args, out, None, points)
    held = heldout_jobs(args, out, points)
    measured = {}
    for j in sweep + forms + held:
        f = Path(j["run_dir"]) / "result.json"
        if f.is_file():
            r = json.loads(f.read_text())
            seconds = r.get("job_cpu_seconds") or r["job_seconds"]  # wall before CPU was kept
            measured.setdefault((j["phase"], j["label"]), []).append(seconds)
    total = 0.0
    phases = (
        ("sweep", sweep),
        ("lur's forms on the tuning concepts (the default form is chosen from them)", forms),
        ("held-out (knob value chosen after the sweep)", held),
    )
    for phase, jobs in phases:
        print(f"## {phase}: {len(jobs)} jobs")
        for j in jobs:
            s = estimate_job(j, measured)
            total += s
            state = "done" if _done(j) else f"~{s:.0f} s"
            print(f"  {Path(j['run_dir']).name}  [{state}]  {' '.join(j['argv'])}")
    todo = [j for j in sweep + forms + held if not _done(j)]
    left = sum(estimate_job(j, measured) for j in todo)
    n = len(sweep) + len(forms) + len(held)
    print(
        f"\n{n} jobs ({len(todo)} to run): ~{total:.0f} s of one-thread work in all, "
        f"{left:.0f} s left; at {args.jobs} at a time ≈ {left / args.jobs / 3600:.1f} h wall "
        f"time on {args.jobs} cores (mean {total / max(n, 1):.0f} s a job)."
    )
    references = reference_specs(args)
    if references:
        missing = sum(not s["cached"] for s in references)
        cost = REFERENCE_SECONDS[args.task]
        total += cost * len(references)
        left += cost * missing
        print(
            f"references: {len(references)} ({missing} to train, ~{cost:.0f} s each): "
            f"+{cost * missing / args.jobs / 3600:.1f} h wall time"
        )
    if args.equal_erasure:
        print(
            "equal erasure: each job is estimated at its fixed budget; a run stops when its "
            "judge sees the target, anywhere up to the cap (4x the budget)"
        )
    return total, left


# -- main ---------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    tasks = [parse_args(argv, t) for t in TASKS] if args.task == "all" else [args]
    failed, work = False, [0.0, 0.0]
    for one in tasks:
        if not one.labels:
            continue
        print(f"# {one.task} task", flush=True)
        if one.dry_run:
            work = [a + b for a, b in zip(work, dry_run(one, Path(one.output_dir) / one.task))]
        else:
            failed |= run_task(one)
    if args.dry_run and len(tasks) > 1:
        total, left = (w / args.jobs / 3600 for w in work)
        print(
            f"\nevery task: ≈ {total:.1f} h wall time in all, {left:.1f} h left, {args.jobs} cores"
        )
    if failed:
        sys.exit(1)


def _sweep_then_held_out(args, out: Path, pool) -> tuple:
    """The sweep and held-out jobs of ``args.labels``: run on ``pool``, or with ``pool`` None
    only read back from disk. Leaves ``args.labels`` at the methods with an operating point."""
    if args.points_from:
        sweep_list, sweep = [], []
        curves, points = points_from_file(args.points_from, args.labels)
    else:
        sweep_list = sweep_jobs(args, out)
        sweep = run_all(sweep_list, pool)
        # a method with no sweep run on disk yet (another --methods run's report) is left out
        # of the report; one whose every sweep run failed is named
        started = {r["job"]["label"] for r in sweep}
        curves = sweep_curves(sweep, [label for label in args.labels if label in started])
        points = {label: choose(pts) for label, pts in curves.items()}
    for label in (label for label, pt in points.items() if pt is None):
        print(f"{label}: every sweep run failed; no held-out runs", flush=True)
    args.labels = {k: v for k, v in args.labels.items() if points.get(k) is not None}
    args.form_list = run_forms(args, out, pool, points)
    held_list = heldout_jobs(args, out, points)
    if any(not _done(j) for j in held_list):
        train_references(args, pool)
    held_results = [with_stored_references(r, args, out) for r in run_all(held_list, pool)]
    return sweep_list, sweep, curves, points, held_list, held_results


def run_task(args) -> bool:
    """One task's comparison; True when a run failed (the others still ran)."""
    out = Path(args.output_dir) / args.task
    from _scripts import machine_record

    from erase.io import atomic_write_json, atomic_write_text

    t0 = time.time()
    pool = None if args.report_only else Pool(args.jobs)
    try:
        sweep_list, sweep, curves, points, held_list, held_results = _sweep_then_held_out(
            args, out, pool
        )
    finally:
        if pool is not None:
            pool.close()
    # a failed run leaves no result.json: keep this call's failures for the report
    failed = [r for r in sweep + held_results if "error" in r]
    if args.methods and not args.report_only and set(args.labels) != set(args.all_labels):
        # a run of some methods must not leave a report of those alone in place of the whole
        # comparison: the report covers every method's runs on disk
        args = copy.copy(args)
        args.labels = dict(args.all_labels)
        sweep_list, sweep, curves, points, held_list, held_results = _sweep_then_held_out(
            args, out, None
        )
    labels = args.labels
    held = heldout_summary(held_results, labels)
    seed_free = {label for label, (method, _, _) in labels.items() if method in SEED_FREE}
    h2h = head_to_head(held_results, args.held_out, DEFAULT_EVAL, seed_free)
    args.pending = {
        "sweep": sum(not _done(j) for j in sweep_list),
        "sweep_total": len(sweep_list),
        "forms": sum(not _done(j) for j in args.form_list),
        "forms_total": len(args.form_list),
        "held_out": sum(not _done(j) for j in held_list),
        "held_out_total": len(held_list),
    }
    md = write_tables(
        args,
        out,
        curves,
        {k: points[k] for k in labels},
        held,
        failed,
        h2h,
        heldout_steplog_table(held_results, labels),
    )
    table = reference_table(held_results, args.held_out, labels)
    md += "\n".join(table) + "\n" if table else ""
    forms_flags = {form: flags for form, (_, flags, _) in LUR_FORMS.items()}
    section = form_section(args.form_rows, args.form, forms_flags, args.tuning)
    md += "\n".join(section) + "\n" if section else ""
    atomic_write_text(out / "frontier.md", md)
    atomic_write_json(
        out / "frontier.json",
        {
            "machine": machine_record("frontier.py"),
            "task": args.task,
            "rule": RULE.format(100 * ERASED_TARGET),
            "tuning": args.tuning,
            "held_out": args.held_out,
            "seeds": args.seeds,
            "ua_samples": args.ua_samples,
            "extra": args.extra,
            "grids": {label: args.grids[knob] for label, (_, _, knob) in args.labels.items()},
            "sweep": curves,
            "operating_points": {k: points[k] for k in labels},
            "held_out_results": held,
            "head_to_head": h2h,
            "lur_form": {"rule": FORM_RULE, "forms": args.form_rows, "chosen": args.form}
            if args.form_rows
            else None,
            "runs": [r for r in sweep + held_results if "error" not in r],
            "failed": [{"run": r["job"]["run_dir"], "error": r["error"]} for r in failed],
            "pending": args.pending,
            "wall_seconds": round(time.time() - t0, 1),
        },
    )
    plot(args, out / "frontier.png", curves, held)
    print(md)
    print(f"wrote {out / 'frontier.md'}, frontier.json, frontier.png")
    return bool(failed)


if __name__ == "__main__":
    main()
