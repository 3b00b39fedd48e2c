"""One Markdown report from erasure run dirs and evaluation outputs.

A run dir (written by the trainer) may hold ``erase_config.json``, ``metrics.json``,
``grid.png``, ``step_log.json`` and ``step_log.png``; an evaluation dir (written by
``eval/*.py``) holds ``<metric>.json``. The report copies every figure it names into its own
``figures/`` folder (so it stays valid when runs move) and draws the loss and
gradient-cosine curves from ``step_log.json`` itself when the run has no plot of them.
The whole report folder is written atomically.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EraseError
from .io import save_figure
from .steplog import plot_step_log

CONVENTIONS = {
    "NudeNet": "v3 detector (320n.onnx); counts every *_EXPOSED class at the stated threshold "
    "(0.6 by default; others publish 0.45 and 0.4).",
    "I2P": "unsafe-prompts4703.csv: 4,703 prompts (931 'sexual', 95 with nudity_percentage > 50); "
    "per-prompt evaluation_seed and evaluation_guidance.",
    "FID": "2048-d Inception-v3 pool features by default; the embedded world uses a digits-FID in "
    "the independent classifier's (or the judge's) feature space.",
    "CLIPScore": "100 · max(cos(image, text), 0), averaged; the CLIP model is named with each number.",
    "UnlearnCanvas": "prompt 'A {object} image in {style} style.', seeds 188/288/588/688/888; "
    "UA = share of target-style images not classified as the target style, IRA = style accuracy "
    "on the other styles, CRA = object accuracy; per-concept accuracies averaged over concepts.",
    "Class erasure (DDPM)": "UA = 1 − classifier accuracy on forget-class samples; FID and "
    "accuracy on the remaining classes.",
}

_FIGURE_NAMES = ("grid.png", "step_log.png")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TASK_TITLES = {"class": "Class erasure", "concept": "Concept erasure"}

# the numbers a reader compares first; "before → after" where the run measured both
HEADLINE_METRICS = (
    "unlearning_accuracy",
    "UA",
    "forget_accuracy",
    "retained_accuracy",
    "forget_digit_accuracy",
    "other_digits_accuracy",
    "forget_style_accuracy",
    "other_styles_accuracy",
    "styled_digit_accuracy",
    "IRA",
    "CRA",
    "fid_remaining",
    "fid",
    "clip_score",
    "images_with_exposed",
    "exposed_rate",
    "erasure_seconds",
    "trained_steps",
)
CONFIG_KEYS = (
    "task",
    "method",
    "concept",
    "forget_class",
    "train_params",
    "method_spec.forget_loss",
    "method_spec.retain_loss",
    "meta.mode",
    "meta.inner_lr",
    "meta.inner_steps",
    "meta.retain_weight_at_theta",
    "meta.precondition",
    "meta.retain_weight",
    "training.max_train_steps",
    "stopping.reason",
    "stopping.target",
    "training.learning_rate",
    "training.train_batch_size",
    "training.seed",
    "pretrained_model",
    "save_format",
)


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _headline(met: dict) -> tuple[dict, dict]:
    """(headline row, per-class accuracy row) from a run's metrics.json.

    Two layouts exist: class runs keep the erased model's numbers at the top level and the
    original's under ``before``; concept runs keep summaries as ``<key>_before``/``<key>_after``
    pairs (and the raw evaluations under ``before``/``after``). NaN (a summary that does not
    apply, e.g. the erased-style accuracy of a digit run) is left out.
    """
    after = met.get("after") if isinstance(met.get("after"), dict) else met
    before = met.get("before") if isinstance(met.get("before"), dict) else {}
    row = {}
    for k in HEADLINE_METRICS:
        a = _number(met.get(f"{k}_after", after.get(k, met.get(k))))
        b = _number(met.get(f"{k}_before", before.get(k)))
        if a is not None:
            row[k] = f"{_fmt(b)} → {_fmt(a)}" if b is not None else a
    check = met.get("check_judge") if isinstance(met.get("check_judge"), dict) else {}
    for k in ("unlearning_accuracy", "retained_accuracy"):  # the second judge, beside the first
        if _number(check.get(k)) is not None:
            row[f"{k} (second judge)"] = _number(check[k])
    row.update(_gap_columns(met.get("reference_gap")))
    per_class = dict(after.get("per_class_accuracy") or {})
    digits = after.get("per_digit_accuracy") or {}
    order = [w for w in _DIGIT_WORDS if w in digits] + [w for w in digits if w not in _DIGIT_WORDS]
    per_class.update({w: digits[w] for w in order})
    per_class.update({f"style {k}": v for k, v in (after.get("per_style_accuracy") or {}).items()})
    return row, {str(c): v for c, v in per_class.items() if _number(v) is not None}


def _gap_columns(record) -> dict:
    """The gap to the exact-unlearning reference (``--reference``), beside the headline."""
    if not isinstance(record, dict) or not isinstance(record.get("gap"), dict):
        return {}
    cols = {}
    if _number(record["gap"].get("avg_gap")) is not None:
        cols["Avg. Gap to reference"] = record["gap"]["avg_gap"]
    if _number(record["gap"].get("avg_shortfall")) is not None:
        cols["Avg. Shortfall (only where worse)"] = record["gap"]["avg_shortfall"]
    run, ref = record.get("run", {}), record.get("reference", {})
    for k in ("erased", "relearn@10"):
        if _number(run.get(k)) is not None and _number(ref.get(k)) is not None:
            cols[f"{k} (run vs reference)"] = f"{_fmt(run[k])} vs {_fmt(ref[k])}"
    floor = (record.get("noise_floor") or {}).get("avg_gap")
    if _number(floor) is not None:
        n = (record.get("noise_floor") or {}).get("references", 2)
        cols[f"noise floor ({n} references)"] = floor
    return cols


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EraseError(f"cannot read {str(path)!r} ({exc.__class__.__name__})") from None


def _flatten(obj, prefix: str = "", depth: int = 2) -> dict[str, float | str]:
    """Scalar leaves of a (nested) dict as ``a.b`` → value; lists are skipped."""
    out: dict = {}
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            out[key] = str(v)
        elif (
            isinstance(v, (int, float))
            and not (isinstance(v, float) and math.isnan(v))
            or isinstance(v, str)
            and len(v) <= 40
        ):
            out[key] = v
        elif isinstance(v, dict) and depth > 0:
            out.update(_flatten(v, key + ".", depth - 1))
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def _table(
    rows: list[tuple[str, dict]], max_cols: int = 16, order: Sequence[str] = ()
) -> list[str]:
    keys: list[str] = []
    for _, r in rows:
        keys += [k for k in r if k not in keys]
    rank = {k: i for i, k in enumerate(order)}
    keys.sort(key=lambda k: rank.get(k, len(rank)))  # stable: unranked keys keep their order
    if not keys:
        return []
    lines = []
    for start in range(0, len(keys), max_cols):
        cols = keys[start : start + max_cols]
        lines.append("| run | " + " | ".join(c.replace("|", "\\|") for c in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for name, r in rows:
            lines.append(f"| {name} | " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
        lines.append("")
    return lines


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _eval_jsons(folder: Path) -> list[Path]:
    """Evaluation outputs in ``folder`` or its ``eval/`` subfolders (``{"metric": ...}`` JSONs)."""
    cands = list(folder.glob("*.json")) + list(folder.glob("eval/*.json"))
    cands += list(folder.glob("eval/*/*.json"))
    out = []
    for p in sorted(set(cands)):
        if p.name in ("erase_config.json", "metrics.json", "step_log.json", "manifest.json"):
            continue
        data = _read_json(p)
        if isinstance(data, dict) and "metric" in data and "summary" in data:
            out.append(p)
    return out


def attack_jsons(folder: str | os.PathLike) -> list[Path]:
    """``attack.json`` files written by ``eval/attack.py`` for ``folder``: its own, or those of
    attack output dirs inside it (``attack-*/``, ``attacks/*/``) or next to it
    (``<folder>-attack-*/``, ``<folder>_attack_*/``)."""
    folder = Path(folder)
    cands = [folder / "attack.json", *folder.glob("attack*/attack.json")]
    cands += list(folder.glob("attacks/*/attack.json"))
    if folder.name:
        for sep in ("-", "_"):
            cands += list(folder.parent.glob(f"{glob.escape(folder.name)}{sep}attack*/attack.json"))
    out = []
    for p in sorted(set(cands)):
        data = _read_json(p)
        if isinstance(data, dict) and "attack" in data and "asr" in data:
            out.append(p)
    return out


def _curve_summary_columns(name: str, data: dict) -> dict[str, str]:
    """Steps until 50 % is back and the area under the share-back curve (the reference's after
    a slash, when the attack ran one); attack.json files older than issue 27 have neither."""
    if "auc" not in data:
        return {}

    def half(v):
        return "not reached" if v is None else f"{v:g}"

    ref = "reference_auc" in data
    steps, auc = half(data["steps_to_half"]), f"{100 * data['auc']:.0f}"
    if ref:
        steps += f" / ref {half(data['reference_steps_to_half'])}"
        auc += f" / ref {100 * data['reference_auc']:.0f}"
    cols = {f"{name} steps to 50 % back": steps, f"{name} area under share-back (%)": auc}
    if data.get("best_within"):  # attack.json files older than the running maximum lack it

        def shares(points):
            return "/".join(f"{100 * v:.0f}" for s, v in points if s > 0)

        best = f"s={'/'.join(str(s) for s, _ in data['best_within'] if s > 0)}: "
        best += shares(data["best_within"])
        if data.get("reference_best_within"):
            best += f" / ref {shares(data['reference_best_within'])}"
        cols[f"{name} best back within s steps (%)"] = best
    return cols


def robustness_columns(folder: str | os.PathLike) -> dict[str, str]:
    """One row of robustness numbers for a run (or an attack dir): ``"<attack> ASR (%)"`` →
    ``"pre → after"`` per attack, and the relearning curve ``"s=0/5/10/20: a/b/c/d"``."""
    row: dict[str, str] = {}
    for p in attack_jsons(folder):
        data = _read_json(p)
        name = str(data["attack"])
        row[f"{name} ASR (%)"] = f"{100 * data['pre_asr']:.0f} → {100 * data['asr']:.0f}"
        curve = data.get("curve") or []
        if curve:
            steps = "/".join(str(c["steps"]) for c in curve)
            shares = "/".join(f"{100 * c['share']:.0f}" for c in curve)
            row[f"{name} curve (%)"] = f"s={steps}: {shares}"
            row.update(_curve_summary_columns(name, data))
        if data.get("seconds_per_prompt") is not None:
            row[f"{name} s/prompt"] = f"{data['seconds_per_prompt']:.1f}"
    return row


def build_report(
    run_dirs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    eval_dirs: Sequence[str | os.PathLike] = (),
    title: str = "Erasure report",
) -> Path:
    """Write ``output_dir/report.md`` (+ ``figures/``); returns the report's path."""
    from .io import atomic_dir, atomic_write_text

    runs = [Path(r) for r in run_dirs]
    evals = [Path(e) for e in eval_dirs]
    for p in runs + evals:
        if not p.is_dir():
            raise EraseError(f"{str(p)!r} is not a directory")
    if not runs and not evals:
        raise EraseError("give at least one run dir or evaluation dir")
    names = _unique_names(runs + evals)
    output_dir = Path(output_dir)
    with atomic_dir(output_dir) as tmp:
        figdir = tmp / "figures"
        figdir.mkdir()
        rows = _RunRows()
        for run in runs:
            _collect_run(run, names[run], figdir, rows)
        for folder in runs + evals:
            _collect_folder(folder, names[folder], figdir, rows)
        md = [f"# {title}", ""] + _metrics_section(rows)
        md += _robustness_section([(names[f], robustness_columns(f)) for f in runs + evals])
        md += _evaluations_section(rows.evals)
        if rows.configs:
            md += ["## Configurations", ""] + _table(rows.configs)
        if rows.figures:
            md += ["## Figures", ""]
            for run, caption, rel in rows.figures:
                md += [f"**{run}** — {caption}", "", f"![{run} {caption}]({rel})", ""]
        md += _conventions_section(runs + evals) + [""]
        atomic_write_text(tmp / "report.md", "\n".join(md))
        missing = missing_figures(tmp / "report.md")
        if missing:  # never publish a report that names a figure it lacks
            raise EraseError(f"report would name missing figures: {', '.join(missing)}")
    return output_dir / "report.md"


def _unique_names(folders: list[Path]) -> dict[Path, str]:
    """A file-safe name per folder, suffixed ``_2``, ``_3`` where two folders share one."""
    names: dict[Path, str] = {}
    for p in folders:
        base = _safe(p.name)
        name, k = base, 2
        while name in names.values():
            name, k = f"{base}_{k}", k + 1
        names[p] = name
    return names


@dataclass
class _RunRows:
    """What the report's sections are built from, gathered folder by folder."""

    configs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)  # (task, run, headline)
    classes: list = field(default_factory=list)  # (task, run, per-class accuracy)
    evals: list = field(default_factory=list)
    figures: list = field(default_factory=list)  # (run, caption, relative path)


def _collect_run(run: Path, name: str, figdir: Path, rows: _RunRows) -> None:
    """An erasure run's configuration, headline metrics and figures (its step log drawn if
    the run has no picture of it)."""
    cfg = _read_json(run / "erase_config.json")
    met = _read_json(run / "metrics.json")
    if cfg is not None:
        flat = _flatten(cfg, depth=1)
        if isinstance(cfg.get("forget_class"), list):
            flat["forget_class"] = ", ".join(map(str, cfg["forget_class"]))
        rows.configs.append((name, {k: flat[k] for k in CONFIG_KEYS if k in flat}))
    if met is not None:
        task = (cfg or {}).get("task", "")
        head, per_class = _headline(met)
        rows.metrics.append((task, name, head))
        if per_class:
            rows.classes.append((task, name, per_class))
    for fname in _FIGURE_NAMES:
        src = run / fname
        if src.is_file():
            dst = figdir / f"{name}_{fname}"
            shutil.copyfile(src, dst)
            caption = "samples (audit grid)" if fname == "grid.png" else "step log"
            rows.figures.append((name, caption, f"figures/{dst.name}"))
    log = _read_json(run / "step_log.json")
    if log is not None and not (run / "step_log.png").is_file():
        fig = plot_step_log(log, title=name)
        if fig is not None:
            dst = figdir / f"{name}_losses_and_cosine.png"
            save_figure(fig, dst, dpi=110)
            rows.figures.append((name, "losses and gradient cosine", f"figures/{dst.name}"))


def _collect_folder(folder: Path, name: str, figdir: Path, rows: _RunRows) -> None:
    """Attack grids and evaluation results (with their figures) found in a folder."""
    for p in attack_jsons(folder):
        src = p.parent / "grid.png"
        if src.is_file():
            dst = figdir / f"{name}_{_safe(p.parent.name)}_grid.png"
            shutil.copyfile(src, dst)
            caption = f"{_read_json(p)['attack']} attack (original | erased | attacked)"
            rows.figures.append((name, caption, f"figures/{dst.name}"))
    for p in _eval_jsons(folder):
        data = _read_json(p)
        row = {"metric": data["metric"], **_flatten(data["summary"], depth=1)}
        if data.get("model"):
            row["model"] = str(data["model"])[-40:]
        rows.evals.append((f"{name}/{p.stem}", row))
        for fig in data.get("figures", []):
            src = p.parent / fig
            if src.is_file():
                dst = figdir / f"{name}_{_safe(Path(fig).name)}"
                shutil.copyfile(src, dst)
                rows.figures.append((name, f"{data['metric']}", f"figures/{dst.name}"))


def _metrics_section(rows: _RunRows) -> list[str]:
    """Headline metrics per task, then per-class accuracy where a run has it."""
    if not rows.metrics:
        return []
    md = [
        "## Metrics",
        "",
        "Before → after where the run measured both; the full "
        "numbers are in each run's metrics.json.",
        "",
    ]
    for task in dict.fromkeys(t for t, _, _ in rows.metrics):
        head = [(n, r) for t, n, r in rows.metrics if t == task]
        per = [(n, r) for t, n, r in rows.classes if t == task]
        label = _TASK_TITLES.get(task, task or "Runs")
        md += [f"### {label}", ""] + _table(head, order=HEADLINE_METRICS)
        if per:
            md += [f"Per-class accuracy after erasure ({label.lower()}):", ""]
            md += _table(per)
    return md


def _robustness_section(robust_rows: list) -> list[str]:
    robust_rows = [(n, r) for n, r in robust_rows if r]
    if not robust_rows:
        return []
    return [
        "## Robustness",
        "",
        "Attacks from eval/attack.py: pre-ASR → ASR (UnlearnDiffAtk's definition: "
        "records judged as the concept before the attack plus those the attack breaks, "
        "over all records); for relearning, the judged share after s fine-tuning steps.",
        "",
    ] + _table(robust_rows)


def _evaluations_section(eval_rows: list) -> list[str]:
    if not eval_rows:
        return []
    md = ["## Evaluations", ""]
    by_metric: dict[str, list] = {}
    for name, row in eval_rows:
        by_metric.setdefault(row["metric"], []).append((name, row))
    for metric, rows in by_metric.items():
        md += [f"### {metric}", ""] + _table(rows)
    return md


def _conventions_section(folders: list[Path]) -> list[str]:
    """The report's conventions, then those the evaluations state themselves."""
    md = ["## Conventions", ""]
    md += [f"- **{k}**: {v}" for k, v in CONVENTIONS.items()]
    stated = {}
    for folder in folders:
        for p in _eval_jsons(folder):
            for k, v in (_read_json(p).get("conventions") or {}).items():
                stated.setdefault(f"{k}", set()).add(str(v))
    if stated:
        md += ["", "Conventions stated by the evaluations in this report:", ""]
        md += [f"- {k}: {'; '.join(sorted(v))}" for k, v in sorted(stated.items())]
    return md


def missing_figures(report: str | os.PathLike) -> list[str]:
    """Figures a Markdown report names (``![..](path)``) that do not exist next to it."""
    report = Path(report)
    text = report.read_text(encoding="utf-8")
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    return [r for r in refs if not (report.parent / r).is_file()]


def write_eval_result(
    output_dir: str | os.PathLike, metric: str, result: dict, markdown: str
) -> tuple[Path, Path]:
    """``<output_dir>/<metric>.json`` and ``.md``, each written atomically.

    ``result`` must carry ``metric`` and ``summary`` (what :func:`build_report` picks up).
    """
    from .io import atomic_write_json, atomic_write_text

    if "summary" not in result:
        raise ValueError("an evaluation result needs a 'summary'")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / f"{metric}.json", output_dir / f"{metric}.md"
    atomic_write_json(json_path, {"metric": metric, **result})
    atomic_write_text(md_path, markdown.rstrip() + "\n")
    return json_path, md_path


def markdown_kv_table(pairs: dict, header: tuple[str, str] = ("quantity", "value")) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_fmt(k)} | {_fmt(v)} |" for k, v in pairs.items()]
    return lines + [""]
