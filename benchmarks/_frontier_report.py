"""The frontier comparison's report: sweep curves, the operating-point rule, held-out summaries,
the Markdown tables and the figure.

Kept apart from ``frontier.py`` (which makes, runs and times the jobs) so that the tables can be
rewritten from committed ``result.json`` files (``--report_only``) and read on their own: every
number here is a function of finished runs' results, nothing here starts a run.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from _head_to_head import head_to_head_lines
from forget_ua import wilson  # the held-out erased share's 95 % interval

from erase.attacks.curves import area_under, steps_until

RULE = (
    "operating point: among the knob values whose mean erased share over the tuning concepts "
    "is ≥ {:.0f} %, the one with the best mean retained accuracy; if none reaches it, the most "
    "erased value (marked 'fallback')"
)
ERASED_TARGET = 0.95
UA_SEED = 20_000  # the runs' own evaluation uses 10 000 (class) / 10 000 and 60 000 (concept)


def _fmt_value(v) -> str:
    return f"{v:g}"


def _mean(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.mean(xs) if xs else float("nan")


def _std(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def _stored_curve(r: dict) -> list[tuple[int, float]] | None:
    """The share-back curve a run stored: before relearning and after ``relearn_steps``."""
    k = r["job"].get("relearn_steps")
    if not k or r.get("relearned") is None:
        return None
    return [(0, r["relearn_before"]), (k, r["relearned"])]


def stopping_block(rows: list[dict]) -> dict:
    """Equal-erasure runs (``--equal_erasure``): how many met the target, and in how many
    steps; nothing for fixed-budget runs."""
    stopped = [r for r in rows if r.get("reached") is not None]
    if not stopped:
        return {}
    return {
        "reached": sum(bool(r["reached"]) for r in stopped),
        "stopped_runs": len(stopped),
        "steps_mean": _mean([r["steps"] for r in stopped]),
        "steps_std": _std([r["steps"] for r in stopped]),
        "avg_gap_mean": _mean([r.get("avg_gap") for r in stopped]),
        "avg_gap_std": _std([r.get("avg_gap") for r in stopped]),
        "avg_shortfall_mean": _mean([r.get("avg_shortfall") for r in stopped]),
    }


def share_back_block(rows: list[dict]) -> dict:
    """Steps until 50 % is back (runs that reach it, and how many do) and the normalised area
    under the share-back curve, from each run's stored curve."""
    curves = [c for c in map(_stored_curve, rows) if c is not None]
    reached = [steps_until(c) for c in curves]
    reached = [s for s in reached if s is not None]
    return {
        "half_back_steps_mean": _mean(reached),
        "half_back_reached": len(reached),
        "curves": len(curves),
        "back_auc_mean": _mean([area_under(c) for c in curves]),
        "back_auc_std": _std([area_under(c) for c in curves]),
    }


def _half_back(b: dict, k: int) -> str:
    if not b["curves"]:
        return "–"
    if not b["half_back_reached"]:
        return f"> {k} (0/{b['curves']})"
    text = f"{b['half_back_steps_mean']:.1f}"
    return (
        text
        if b["half_back_reached"] == b["curves"]
        else (f"{text} ({b['half_back_reached']}/{b['curves']})")
    )


def sweep_curves(results: list[dict], labels) -> dict:
    """label → [{value, erased, retained, fid, seconds, concepts}] over knob values, the means
    over the tuning concepts."""
    curves = {}
    for label in labels:
        by_value = {}
        for r in results:
            if r["job"]["label"] == label and "error" not in r:
                by_value.setdefault(r["job"]["value"], []).append(r)
        pts = []
        for value, rs in sorted(by_value.items()):
            pts.append(
                {
                    "value": value,
                    "knob": rs[0]["job"]["knob"],
                    "concepts": sorted(r["job"]["concept"] for r in rs),
                    **{k: _mean([r[k] for r in rs]) for k in ("erased", "retained", "seconds")},
                    "fid": _mean([r.get("fid") for r in rs]),
                    "steplog": _steplog_mean([r.get("steplog") for r in rs]),
                }
            )
        curves[label] = pts
    return curves


STEPLOG_KEYS = [
    ("cos_theta", "cos at θ"),
    ("cos_theta_negative_share", "cos at θ < 0 (% of steps)"),
    ("cos_lookahead_first_half", "cos at θ', 1st half"),
    ("cos_lookahead_second_half", "cos at θ', 2nd half"),
    ("grad_norm", "‖g‖"),
    ("loss_forget_end", "L_f at end"),
    ("loss_retain_end", "L_r at end"),
]


# held out: does the retain loss at θ, the weights handed over, hold? (runs whose step log
# is still on disk; a checkout holding only result.json files has them for later runs)
HELDOUT_STEPLOG_KEYS = [
    ("loss_retain_theta_first_third", "L_r(θ), 1st third"),
    ("loss_retain_theta_last_third", "L_r(θ), last third"),
    ("grad_norm", "‖g‖"),
    ("grad_norm_max", "max ‖g‖"),
    ("cos_theta", "cos at θ"),
]


def _steplog_mean(logs: list, keys=STEPLOG_KEYS) -> dict | None:
    logs = [g for g in logs if g]
    if not logs:
        return None
    return {k: _mean([g.get(k) for g in logs]) for k, _ in keys}


def heldout_steplog_table(results: list[dict], labels) -> list[str]:
    """Per method, the held-out runs' step logs: whether retention at θ drifts over training."""
    lines = [
        "| method | runs | " + " | ".join(h for _, h in HELDOUT_STEPLOG_KEYS) + " |",
        "|---|---|" + "---|" * len(HELDOUT_STEPLOG_KEYS),
    ]
    for label in labels:
        logs = [
            r["steplog"]
            for r in results
            if r["job"]["label"] == label
            and "error" not in r
            and (r.get("steplog") or {}).get("loss_retain_theta_last_third") is not None
        ]
        g = _steplog_mean(logs, HELDOUT_STEPLOG_KEYS)
        if g:
            cells = [
                _f(g[k]) if "loss" not in k else f"{g[k]:.4f}" for k, _ in HELDOUT_STEPLOG_KEYS
            ]
            lines.append(f"| {label} | {len(logs)} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def steplog_table(curves: dict) -> list[str]:
    """The step logs of the sweep runs, per method and knob value (means over the tuning
    concepts): where the variants of ``lur`` differ in how forget and retain gradients meet."""
    lines = [
        "| method | value | " + " | ".join(h for _, h in STEPLOG_KEYS) + " |",
        "|---|---|" + "---|" * len(STEPLOG_KEYS),
    ]
    for label, pts in curves.items():
        for pt in pts:
            g = pt.get("steplog")
            if g:
                cells = [_f(g[k]) if "share" not in k else _p(g[k]) for k, _ in STEPLOG_KEYS]
                lines.append(f"| {label} | {_fmt_value(pt['value'])} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def choose(points: list[dict], target: float = ERASED_TARGET) -> dict | None:
    """The operating point by ``RULE``."""
    if not points:
        return None
    # the erased shares are float32 ratios of counts (19 of 20 → 0.94999999925): compare
    # them with a tolerance far below one image, or 95.0 % would count as less than 95 %
    ok = [p for p in points if p["erased"] >= target - 1e-6]
    if ok:
        best = max(ok, key=lambda p: (p["retained"], p["erased"]))
        return {**best, "fallback": False}
    best = max(points, key=lambda p: (p["erased"], p["retained"]))
    return {**best, "fallback": True}


def heldout_summary(results: list[dict], labels) -> dict:
    """label → pooled and per-concept held-out numbers."""
    out = {}
    for label in labels:
        rs = [r for r in results if r["job"]["label"] == label and "error" not in r]
        if not rs:
            continue

        def block(rows):
            missed, n = sum(r["ua_missed"] for r in rows), sum(r["ua_n"] for r in rows)
            lo, hi = wilson(missed, n)
            return {
                "runs": len(rows),
                "erased_mean": _mean([r["erased"] for r in rows]),
                "erased_std": _std([r["erased"] for r in rows]),
                "erased_pooled": missed / n,
                "erased_interval": [lo, hi],
                "samples": n,
                "retained_mean": _mean([r["retained"] for r in rows]),
                "retained_std": _std([r["retained"] for r in rows]),
                "fid_mean": _mean([r.get("fid") for r in rows]),
                "fid_std": _std([r.get("fid") for r in rows]),
                "relearned_mean": _mean([r.get("relearned") for r in rows]),
                "relearned_std": _std([r.get("relearned") for r in rows]),
                "seconds_mean": _mean([r["seconds"] for r in rows]),
                "seconds_std": _std([r["seconds"] for r in rows]),
                **share_back_block(rows),
                **stopping_block(rows),
            }

        concepts = sorted({r["job"]["concept"] for r in rs})
        out[label] = {
            "all": block(rs),
            "per_concept": {
                c: block([r for r in rs if r["job"]["concept"] == c]) for c in concepts
            },
        }
    return out


def _p(x):
    return "–" if x is None or x != x else f"{100 * x:.1f}"


def _f(x):
    return "–" if x is None or x != x else f"{x:.2f}"


def _pending_note(pending: dict | None) -> list[str]:
    if not pending or not (pending["sweep"] or pending["held_out"] or pending.get("forms")):
        return []
    forms = (
        f"{pending['forms']} of {pending['forms_total']} runs of `lur`'s forms, "
        if pending.get("forms")
        else ""
    )
    return [
        f"**Partial comparison**: {pending['sweep']} of {pending['sweep_total']} sweep runs, "
        f"{forms}and {pending['held_out']} of {pending['held_out_total']} held-out runs are not "
        "done yet (held-out runs go seed by seed). The same command resumes them.",
        "",
    ]


def shown_path(path: Path) -> str:
    """``path`` relative to the checkout where it lies inside it (reports name no machine)."""
    try:
        return str(Path(path).resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def _points_note(path) -> list[str]:
    """Where the operating points came from when this comparison ran no sweep."""
    if not path:
        return []
    return [
        f"Operating points taken from `{shown_path(path)}`, the fixed-budget comparison's sweep "
        "(shown below): this comparison ran no sweep of its own.",
        "",
    ]


def _stop_cells(b: dict) -> str:
    """The equal-erasure cells of one held-out row; dashes for a method that does not train."""
    if "reached" not in b:
        return " – | – | – | – |"
    return (
        f" {b['reached']}/{b['stopped_runs']} | {_f(b['steps_mean'])} ± {_f(b['steps_std'])} | "
        f"{_f(b['avg_gap_mean'])} ± {_f(b['avg_gap_std'])} | {_f(b['avg_shortfall_mean'])} |"
    )


def write_tables(
    args,
    out: Path,
    curves: dict,
    points: dict,
    held: dict,
    failed: list,
    h2h: dict | None = None,
    heldout_steplog: list[str] | None = None,
) -> str:
    cls = args.task == "class"
    fid_head = " digits-FID ↓ |" if cls else ""
    k = args.relearn_steps
    back_head = (
        f" back after {k} relearning steps (%) ↓ | steps until 50 % back ↑ | "
        "area under share-back (%) ↓ |"
        if k
        else ""
    )
    lines = [
        f"# Frontiers, {args.task} task",
        "",
        f"Tuning concepts {', '.join(args.tuning)} (seed 0); held out "
        f"{', '.join(args.held_out)} (seeds {', '.join(map(str, args.seeds))}). "
        + RULE.format(100 * ERASED_TARGET)
        + ".",
        "",
        *_points_note(getattr(args, "points_from", None)),
        *_pending_note(getattr(args, "pending", None)),
        "## Sweep on the tuning concepts (means over them)",
        "",
        "| method | knob | value | erased (%) ↑ | retained (%) ↑ |" + fid_head + " time (s) |",
        "|---|---|---|---|---|" + ("---|" if cls else "") + "---|",
    ]
    for label, pts in curves.items():
        for pt in pts:
            mark = " **←**" if points.get(label) and points[label]["value"] == pt["value"] else ""
            lines.append(
                f"| {label} | {pt['knob']} | {_fmt_value(pt['value'])}{mark} | "
                f"{_p(pt['erased'])} | {_p(pt['retained'])} |"
                + (f" {_f(pt['fid'])} |" if cls else "")
                + f" {_f(pt['seconds'])} |"
            )
    steplog = steplog_table(curves)
    if steplog:
        lines += [
            "",
            "## What the step logs say (sweep runs, means over the tuning concepts)",
            "",
            "cos at θ: cos(∇L_f(θ), ∇L_r(θ)), logged every step by the other methods and "
            "every 10th by `lur`, with the share of those steps where the two gradients "
            "oppose; cos at θ': `lur`'s cos(∇L_f(θ), ∇L_r(θ')), the retain gradient after the "
            "look-ahead, every step; ‖g‖: the norm of the combined gradient the optimizer steps "
            "on; L_f, L_r: the losses over the last 20 steps (L_r after the look-ahead for "
            "`lur`).",
            "",
            *steplog,
        ]
    lines += [
        "",
        "## Held out, at each method's operating point",
        "",
        f"Erased share on {args.ua_samples} new images per run (seed {UA_SEED}), mean ± std over "
        "runs and, pooled over every run's images, with its 95 % Wilson interval; retained "
        "accuracy from the runs' own evaluation."
        + (
            f" Robustness: the share of judged images showing the concept again after {k} "
            "relearning steps on 32 images of it (`eval/attack.py --attack relearn`; "
            + ("50 samples" if cls else "the first 5 forget prompts × seeds 0, 1")
            + " a run), mean ± std over runs; from each run's curve (0 and "
            f"{k} steps, linear between them): the steps until 50 % is back, mean over the runs "
            "that reach it (with how many do when not all; 0 = already half back before "
            "relearning), and the area under the curve over its step span, mean ± std."
            if k
            else ""
        ),
        "",
        "| method | operating point | erased (%) mean ± std | erased pooled (95 % CI) | "
        "retained (%) ↑ |" + fid_head + back_head + " time (s) |",
        "|---|---|---|---|---|" + ("---|" if cls else "") + ("---|---|---|" if k else "") + "---|",
    ]

    def held_row(name, pt, b):
        lo, hi = b["erased_interval"]
        return (
            f"| {name} | {pt} | {_p(b['erased_mean'])} ± {_p(b['erased_std'])} | "
            f"{_p(b['erased_pooled'])} ({_p(lo)}–{_p(hi)}) | "
            f"{_p(b['retained_mean'])} ± {_p(b['retained_std'])} |"
            + (f" {_f(b['fid_mean'])} ± {_f(b['fid_std'])} |" if cls else "")
            + (
                f" {_p(b['relearned_mean'])} ± {_p(b['relearned_std'])} | {_half_back(b, k)} | "
                f"{_p(b['back_auc_mean'])} ± {_p(b['back_auc_std'])} |"
                if k
                else ""
            )
            + f" {_f(b['seconds_mean'])} ± {_f(b['seconds_std'])} |"
            + (_stop_cells(b) if stops else "")
        )

    # equal erasure: whether each run met the target, in how many steps, and its Avg. Gap
    # (a closed-form edit has no steps: its cells say so)
    stops = any("reached" in h["all"] for h in held.values())
    stop_head = " target met | steps | Avg. Gap to the reference | Avg. Shortfall |"
    if stops:
        lines[-2] += stop_head
        lines[-1] += "---|---|---|---|"
    for label, h in held.items():
        pt = points[label]
        desc = f"{pt['knob']} {_fmt_value(pt['value'])}" + (" (fallback)" if pt["fallback"] else "")
        desc += f", {h['all']['runs']} runs"
        lines.append(held_row(f"**{label}**", desc, h["all"]))
    lines += ["", "Per held-out concept:", ""]
    lines += [
        "| concept | method | erased (%) mean ± std | erased pooled (95 % CI) | retained (%) ↑ |"
        + fid_head
        + back_head
        + " time (s) |"
        + (stop_head if stops else ""),
        "|---|---|---|---|---|"
        + ("---|" if cls else "")
        + ("---|---|---|" if k else "")
        + "---|"
        + ("---|---|---|---|" if stops else ""),
    ]
    for c in args.held_out:
        for label, h in held.items():
            if c in h["per_concept"]:
                lines.append(held_row(c, label, h["per_concept"][c]))
    lines += ["", *head_to_head_lines(h2h or {}, args.held_out)]
    if heldout_steplog:
        lines += [
            "## What the held-out step logs say",
            "",
            "Means over the held-out runs whose step log is on disk: the retain loss at θ (the "
            "weights handed over; `lur` logs it on its monitor steps and otherwise judges "
            "retention at θ') over the first and the last third of training, and the norm of "
            "the gradient stepped on, its mean and its largest value.",
            "",
            *heldout_steplog,
            "",
        ]
    if failed:
        lines += ["", "Failed runs (left out above):", ""]
        lines += [f"- {Path(r['job']['run_dir']).name}: {r['error']}" for r in failed]
    lines += [
        "",
        (
            "Erased share = unlearning accuracy (share of forget-digit samples the independent "
            "digits classifier does not recognise as the digit); retained = its accuracy on the "
            "other nine digits; digits-FID on the remaining classes."
            if cls
            else "Erased share = share of the concept's images the independent judge does not "
            "judge as the concept (the digit, or the style); retained = mean of the other "
            "digits' and the other styles' accuracy."
        )
        + " Time: the erasure alone (training loop or closed-form edit), one thread, two runs "
        "at a time.",
    ]
    return "\n".join(lines) + "\n"


def plot(args, path: Path, curves: dict, held: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_y = [("retained", "retained accuracy (%)")]
    if args.task == "class":
        axes_y.append(("fid", "digits-FID of the remaining digits"))
    kept = [100 * h["all"]["retained_mean"] for h in held.values()]
    # the methods that keep the rest crowd the top: a zoom on them when others fall far below
    zoom = bool(kept) and max(kept) - min(kept) > 20 and sum(k >= 90 for k in kept) >= 2
    n = len(axes_y) + 1 + zoom
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    # tab10, then five more: with --lur_variants there are fifteen methods
    colors = [*plt.get_cmap("tab10").colors, "black", "goldenrod", "teal", "navy", "lime"]
    markers = "osD^vP*Xhp<>dH8"

    def look(k: int) -> tuple[str, tuple | str]:
        """Method k's marker and colour, the same in every panel."""
        return markers[k % len(markers)], colors[k % len(colors)]

    for i, (key, ylabel) in enumerate(axes_y):
        ax = axes[0][i]
        for k, (label, pts) in enumerate(curves.items()):
            xs = [100 * p["erased"] for p in pts]
            ys = [p[key] * (100 if key == "retained" else 1) for p in pts]
            marker, color = look(k)
            ax.plot(xs, ys, "-", marker=marker, color=color, label=label, ms=4)
            for x, y, p in zip(xs, ys, pts):  # the knob value next to its point
                ax.annotate(
                    _fmt_value(p["value"]),
                    (x, y),
                    fontsize=6,
                    color=color,
                    xytext=(3, 2),
                    textcoords="offset points",
                )
        ax.axvline(100 * ERASED_TARGET, color="grey", ls=":", lw=1)
        ax.set_xlabel("erased share (%), tuning concepts")
        ax.set_ylabel(ylabel)
        ax.set_title(f"sweep: erased vs {key}")
    ax = axes[0][len(axes_y)]
    zoom_ax = axes[0][-1] if zoom else None
    for k, (label, h) in enumerate(held.items()):
        b = h["all"]
        x, (lo, hi) = 100 * b["erased_pooled"], b["erased_interval"]
        marker, color = look(list(curves).index(label) if label in curves else k)
        style = dict(
            xerr=[[x - 100 * lo], [100 * hi - x]],
            yerr=[100 * b["retained_std"]],
            fmt=marker,
            color=color,
            capsize=3,
        )
        ax.errorbar([x], [100 * b["retained_mean"]], label=label, **style)
        if zoom_ax is not None and 100 * b["retained_mean"] >= 90:
            zoom_ax.errorbar([x], [100 * b["retained_mean"]], label=label, **style)
    if zoom_ax is not None:
        zoom_ax.set_title("held out: the methods keeping ≥ 90 %")
        zoom_ax.set_xlabel("erased share (%), held out, pooled (95 % CI)")
        zoom_ax.set_ylabel("retained accuracy (%)")
        zoom_ax.legend(fontsize=7)
    ax.set_xlabel("erased share (%), held out, pooled (95 % CI)")
    ax.set_ylabel("retained accuracy (%)")
    ax.set_title("held out: operating points")
    ax.legend(fontsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{args.task} task: trade-off frontiers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
