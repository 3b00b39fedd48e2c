#!/usr/bin/env python
"""What the optimiser does with each method's gradients: step sizes, Adam's second moment, and
how far the weights travel, for `lur`, its variants and `joint` at their frontier points.

    python benchmarks/step_dynamics.py --concepts thick seven --seeds 0 --output step_dynamics.json

The frontier's step logs say what the losses and gradients do; they cannot say whether `lur`
erases less than `joint` because its steps are smaller (early gradient spikes filling Adam's
second-moment estimate v̂ and shrinking every later step) or because they point elsewhere.
This runs ``scripts/erase_concept.py`` in-process with torch's global optimizer step hooks, so
the trainer is the one users run, unchanged: per step it records the norm of the gradient the
optimiser is handed (after any clipping), the norm of the update, the mean of √v̂ (bias-
corrected) and the distance from the starting weights. Each method runs at the operating point
the concept frontier chose for it (``benchmarks/frontier/concept/frontier.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _scripts import CONCEPT_SMOKE, SMOKE_HELP, machine_record  # noqa: E402

FRONTIER_JSON = HERE / "frontier" / "concept" / "frontier.json"
DEFAULT_LABELS = ["lur", "lur-clip", "lur-k2", "lur-retain-first", "joint"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concepts", nargs="+", default=["thick", "seven"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--labels", nargs="+", default=DEFAULT_LABELS, help="frontier labels")
    p.add_argument("--output", default="step_dynamics.json")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    return p.parse_args(argv)


class OptimizerProbe:
    """Per-step numbers of the (one) optimizer that steps while it is installed."""

    def __init__(self):
        self.rows: list[dict] = []
        self._before: list[torch.Tensor] = []
        self._start: list[torch.Tensor] | None = None
        self._grad_norm = 0.0
        self._handles = []

    def __enter__(self):
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        self._handles = [
            register_optimizer_step_pre_hook(self._pre),
            register_optimizer_step_post_hook(self._post),
        ]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()

    @staticmethod
    def _params(opt) -> list[torch.Tensor]:
        return [p for g in opt.param_groups for p in g["params"] if p.grad is not None]

    @staticmethod
    def _norm(tensors) -> float:
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors)))))

    def _pre(self, opt, args, kwargs):
        params = self._params(opt)
        self._grad_norm = self._norm(p.grad for p in params)
        self._before = [p.detach().clone() for p in params]
        if self._start is None:
            self._start = [b.clone() for b in self._before]

    def _post(self, opt, args, kwargs):
        params = self._params(opt)
        beta2 = opt.param_groups[0].get("betas", (0.9, 0.999))[1]
        root_v, count = 0.0, 0
        for p in params:
            state = opt.state.get(p, {})
            if "exp_avg_sq" in state:
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
                root_v += float(v_hat.sqrt().sum())
                count += v_hat.numel()
        self.rows.append(
            {
                "grad_norm": self._grad_norm,
                "update_norm": self._norm(p.detach() - b for p, b in zip(params, self._before)),
                "sqrt_v_hat": root_v / count if count else None,
                "distance": self._norm(p.detach() - s for p, s in zip(params, self._start)),
            }
        )


def summarise(rows: list[dict], log: list[dict]) -> dict:
    """Early (first 5 steps) against late (second half) numbers of one run."""
    half = len(rows) // 2

    def mean(key, part):
        xs = [r[key] for r in part if isinstance(r.get(key), (int, float))]
        return statistics.mean(xs) if xs else None

    return {
        "steps": len(rows),
        "largest_grad_norm": max(r["grad_norm"] for r in rows),
        "update_norm_first5": mean("update_norm", rows[:5]),
        "update_norm_late": mean("update_norm", rows[half:]),
        "sqrt_v_hat_late": mean("sqrt_v_hat", rows[half:]),
        "grad_norm_late": mean("grad_norm", rows[half:]),
        "path_length": sum(r["update_norm"] for r in rows),
        "distance_end": rows[-1]["distance"],
        # cos(∇L_f, ∇L_r) as the step log has it: at θ' for lur, at θ for joint
        "cos_forget_retain_late": mean("cos", log[half:]),
        "grad_norm_forget_late": mean("grad_norm_forget", log[half:]),
    }


def operating_points() -> dict:
    if not FRONTIER_JSON.is_file():
        raise SystemExit(
            f"{FRONTIER_JSON} is missing: run benchmarks/frontier.py --task concept "
            "--lur_variants first, it chooses the operating points this measures at"
        )
    return json.loads(FRONTIER_JSON.read_text())["operating_points"]


def run_one(label: str, concept: str, seed: int, value: float, extra: list[str], tmp: Path):
    from frontier import KNOBS, LUR_VARIANTS, METHODS, _fmt_value, numbers

    from erase.cli.erase_concept import main as erase_concept

    method, flags, knob = {**METHODS["concept"], **LUR_VARIANTS}[label]
    run_dir = tmp / f"{concept}-{label}-seed{seed}"
    argv = ["--concept", concept, "--method", method, *flags, "--seed", str(seed)]
    argv += ["--output_dir", str(run_dir), "--overwrite", "--cache_dir", str(tmp / "cache")]
    argv += ["--stop_at_erased", "off"]  # the frontier's fixed budget
    argv += extra
    argv += [KNOBS[knob], _fmt_value(value)]
    with OptimizerProbe() as probe:
        erase_concept(argv)
    log = json.loads((run_dir / "step_log.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    got = numbers("concept", metrics)
    return {
        "label": label,
        "concept": concept,
        "seed": seed,
        "value": value,
        "erased": got["erased"],
        "retained": got["retained"],
        **summarise(probe.rows, log),
        "per_step": probe.rows,
    }


def table(results: list[dict]) -> str:
    head = (
        "| concept, seed | method | erased | largest ‖g‖ | ‖Δθ‖ first 5 | ‖Δθ‖ late | √v̂ late | "
        "‖g‖ late | ‖∇L_f‖ late | cos(∇L_f, ∇L_r) late | path | distance |\n" + "|---" * 12 + "|\n"
    )

    def f(x, fmt):
        return "–" if x is None else format(x, fmt)

    lines = [
        f"| {r['concept']}, {r['seed']} | {r['label']} | {100 * r['erased']:.1f} % | "
        f"{r['largest_grad_norm']:.2f} | {r['update_norm_first5']:.4f} | "
        f"{r['update_norm_late']:.4f} | {f(r['sqrt_v_hat_late'], '.2e')} | "
        f"{r['grad_norm_late']:.3f} | {f(r['grad_norm_forget_late'], '.3f')} | "
        f"{f(r['cos_forget_retain_late'], '+.2f')} | {r['path_length']:.2f} | "
        f"{r['distance_end']:.2f} |"
        for r in results
    ]
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    points = operating_points()
    unknown = [lab for lab in args.labels if lab not in points]
    if unknown:
        raise SystemExit(
            f"no operating point for {unknown} in {FRONTIER_JSON}; choose from "
            f"{', '.join(sorted(points))}"
        )
    extra = list(CONCEPT_SMOKE) if args.smoke else []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for concept in args.concepts:
            for seed in args.seeds:
                for label in args.labels:
                    results.append(
                        run_one(label, concept, seed, points[label]["value"], extra, Path(tmp))
                    )
    from erase.io import atomic_write_json

    md = table(results)
    atomic_write_json(
        Path(args.output), {"machine": machine_record("step_dynamics.py"), "results": results}
    )
    print(md)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
