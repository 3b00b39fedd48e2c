"""The step log as JSON and as a picture: losses and the forget/retain gradient cosine."""

from __future__ import annotations

from pathlib import Path

from .io import atomic_write_json, save_figure


def save_step_log(log: list[dict], out_dir: str | Path, title: str = "") -> None:
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "step_log.json", log)
    if log:
        save_figure(plot_step_log(log, title), out_dir / "step_log.png", dpi=110)


def plot_step_log(log: list[dict], title: str = ""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in log]
    fig, (ax_l, ax_c) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in [
        ("loss_forget", "L_f(θ)"),
        ("loss_retain", "L_r(θ)"),
        ("loss_retain_lookahead", "L_r(θ') look-ahead"),
        ("loss_forget_lookahead", "L_f(θ') look-ahead"),
    ]:
        pts = [(s, r[key]) for s, r in zip(steps, log) if key in r]
        if pts:
            ax_l.plot(*zip(*pts), label=label, lw=1.2, marker="." if len(pts) < 40 else None)
    ax_l.set_xlabel("step")
    ax_l.set_ylabel("loss")
    ax_l.set_title("losses")
    ax_l.legend(fontsize=8)
    for key, label in [("cos", "cos(∇L_f(θ), ∇L_r(θ'))"), ("cos_at_theta", "cos(∇L_f, ∇L_r) at θ")]:
        pts = [(s, r[key]) for s, r in zip(steps, log) if key in r]
        if pts:
            ax_c.plot(*zip(*pts), label=label, lw=1.2, marker="." if len(pts) < 40 else None)
    ax_c.axhline(0.0, color="grey", lw=0.6)
    ax_c.set_ylim(-1.05, 1.05)
    ax_c.set_xlabel("step")
    ax_c.set_title("gradient conflict monitor")
    ax_c.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
