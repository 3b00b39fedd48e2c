"""The step log as JSON and as a picture: losses and the forget/retain gradient cosine."""

from __future__ import annotations

import math
import re
from pathlib import Path

from .io import atomic_write_json, save_figure

# How the trainer's own keys are labelled; any other loss or cosine key is drawn under its name.
LOSS_LABELS = {
    "loss_forget": "L_f(θ)",
    "loss_retain": "L_r(θ)",
    "loss_retain_lookahead": "L_r(θ') look-ahead",
    "loss_forget_lookahead": "L_f(θ') look-ahead",
}
# lur's "cos" pairs the inner loss's gradient at θ with the outer one's at θ' (forget then
# retain in the paper's order, retain then forget in lur's default)
COS_LABELS = {"cos": "cos(∇L_in(θ), ∇L_out(θ'))", "cos_at_theta": "cos(∇L_f, ∇L_r) at θ"}


def forget_loss(stats: dict) -> float | None:
    """The forget loss a step logged: at θ, or at θ' where the step looked ahead on retention
    first (lur's default order) and so never evaluated it at θ."""
    return stats.get("loss_forget", stats.get("loss_forget_lookahead"))


def save_step_log(log: list[dict], out_dir: str | Path, title: str = "") -> None:
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "step_log.json", log)
    fig = plot_step_log(log, title) if log else None
    if fig is not None:
        save_figure(fig, out_dir / "step_log.png", dpi=110)


def step_series(step_log) -> dict[str, list[tuple[float, float]]]:
    """Finite numeric series from a step log: a list of per-step dicts, or a dict of lists
    (older or foreign logs, as the report meets them)."""
    entries = step_log.get("steps", step_log) if isinstance(step_log, dict) else step_log
    series: dict[str, list[tuple[float, float]]] = {}
    if isinstance(entries, dict):  # {"loss_forget": [...], ...}
        for k, vals in entries.items():
            if isinstance(vals, list):
                series[k] = [
                    (i, float(v)) for i, v in enumerate(vals) if isinstance(v, (int, float))
                ]
        return {k: v for k, v in series.items() if v}
    if not isinstance(entries, list):
        return {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        step = e.get("step", i)
        for k, v in e.items():
            if k == "step" or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                continue
            series.setdefault(k, []).append((float(step), float(v)))
    return series


def _group(series: dict, known: dict, match) -> list[tuple[str, list]]:
    """``(label, points)``: the known keys in their order, then the other matching ones."""
    keys = [k for k in known if k in series]
    keys += sorted(k for k in series if k not in known and match(k))
    return [(known.get(k, k), series[k]) for k in keys]


def plot_step_log(step_log, title: str = ""):
    """Loss curves (left) and gradient cosines (right); None if the log has neither."""
    series = step_series(step_log)
    losses = _group(series, LOSS_LABELS, lambda k: "loss" in k.lower() or re.match(r"^L_", k))
    cosines = _group(series, COS_LABELS, lambda k: "cos" in k.lower())
    if not losses and not cosines:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_c) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, group in ((ax_l, losses), (ax_c, cosines)):
        for label, pts in group:
            ax.plot(*zip(*pts), label=label, lw=1.2, marker="." if len(pts) < 40 else None)
        ax.set_xlabel("step")
        if group:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    ax_l.set_ylabel("loss")
    ax_l.set_title("losses")
    ax_c.axhline(0.0, color="grey", lw=0.6)
    ax_c.set_ylim(-1.05, 1.05)
    ax_c.set_title("gradient conflict monitor")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
