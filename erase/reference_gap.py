"""How far is an erased model from one that never learned the concept?

For a run and its exact-unlearning reference (:mod:`erase.reference`) the same measures are
taken with the same judge, samples and seeds — erased share (UA), kept accuracy on the other
classes, FID of the other classes, and the relearning curve (share back after 5, 10, 20 steps of
the relearning attack) — then the gaps |run − reference| and their mean, the Avg. Gap of the
unlearning literature (SalUn's tables) over erased share, kept accuracy and the relearning
share at ``AVG_GAP_RELEARN_STEP`` steps; FID is reported beside it, not in it (another scale).

The Avg. Gap is symmetric: a run that erases *more* than the reference, or comes back *slower*
than a model that never learned the concept, is as far from it as one that falls short. So each
record also carries the **shortfall**, the one-sided gap: how much less the run erases and keeps,
and how much more comes back, than the reference (0 where the run does at least as well), and its
mean, the Avg. Shortfall. A run with Avg. Shortfall 0 is no worse than retraining on any measure.

Two or more references of different seeds do two things. The run is measured against their
mean, per measure: one retraining is one draw (on the embedded world two seeds differ by up to
12 points in the share back after 10 relearning steps), and the mean estimates retraining as
such. And they give the noise floor: the Avg. Gap of each reference to the mean of the others,
averaged (with two: the gap between them). A run whose Avg. Gap is at or below it cannot be told
apart from retraining by these measures; one whose Avg. Shortfall is at or below it is no worse
than retraining by them. Every reference's own measures stay in the record (``each_reference``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .io import atomic_write_json

RELEARN_STEPS = (5, 10, 20)
AVG_GAP_RELEARN_STEP = 10
AVG_GAP_TERMS = ("erased", "kept", f"relearn@{AVG_GAP_RELEARN_STEP}")
HIGHER_IS_BETTER = ("erased", "kept")  # the rest (FID, the share back) are better lower


def measures_from(metrics: dict, curve: list[dict] | None) -> dict:
    """The measures of one model from its class-erasure metrics and its relearning curve."""
    m = {
        "erased": metrics["unlearning_accuracy"],
        "kept": metrics["retained_accuracy"],
        "fid": metrics.get("fid_remaining"),
    }
    return with_relearn_curve(m, curve)


def with_relearn_curve(measures: dict, curve: list[dict] | None) -> dict:
    """``measures`` (erased, kept, fid) with the relearning curve's shares added, and the
    second judge's (``check@s``) where the probe had one."""
    m = dict(measures)
    for point in curve or []:
        m[f"relearn@{point['steps']}"] = point["share"]
        if point.get("check_share") is not None:
            m[f"check@{point['steps']}"] = point["check_share"]
    return m


def curve_points(point: dict) -> dict:
    """One relearning-curve point as the gap probe keeps it: steps, share, second judge's."""
    keep = ("steps", "share", "check_share")
    return {k: point[k] for k in keep if point.get(k) is not None}


def gaps(run: dict, reference: dict) -> dict:
    """|run − reference| per measure both have, and the Avg. Gap over ``AVG_GAP_TERMS``."""
    out = {
        k: abs(run[k] - reference[k])
        for k in run
        if k in reference and run[k] is not None and reference[k] is not None
    }
    terms = [out[k] for k in AVG_GAP_TERMS if k in out]
    out["avg_gap"] = sum(terms) / len(terms) if terms else None
    out["avg_gap_terms"] = [k for k in AVG_GAP_TERMS if k in out]
    out["shortfall"] = shortfall(run, reference)
    short = [out["shortfall"][k] for k in AVG_GAP_TERMS if k in out["shortfall"]]
    out["avg_shortfall"] = sum(short) / len(short) if short else None
    return out


def shortfall(run: dict, reference: dict) -> dict:
    """How much worse than the reference, per measure both have (0 where the run is as good or
    better): less erased or kept, or more FID or share back."""
    out = {}
    for k in run:
        if k in reference and run[k] is not None and reference[k] is not None:
            worse = reference[k] - run[k] if k in HIGHER_IS_BETTER else run[k] - reference[k]
            out[k] = max(0.0, worse)
    return out


def mean_measures(references: list[dict]) -> dict:
    """The per-measure mean of several references' measures (a measure missing or None in
    any of them is left out: a mean over fewer seeds would not be the same estimate)."""
    keys = [k for k in references[0] if all(r.get(k) is not None for r in references)]
    return {k: sum(r[k] for r in references) / len(references) for k in keys}


def noise_floor(references: list[dict]) -> dict:
    """The gap one retraining shows to the others: each reference against the mean of the rest,
    each measure's gap and the Avg. Gap averaged over the references (two: the gap between them)."""
    leave_one_out = [
        gaps(r, mean_measures(references[:i] + references[i + 1 :]))
        for i, r in enumerate(references)
    ]
    keys = [k for k in leave_one_out[0] if isinstance(leave_one_out[0][k], (int, float))]
    floor = {
        k: sum(g[k] for g in leave_one_out) / len(leave_one_out)
        for k in keys
        if all(isinstance(g.get(k), (int, float)) for g in leave_one_out)
    }
    floor["avg_gap_terms"] = leave_one_out[0]["avg_gap_terms"]
    floor["references"] = len(references)
    return floor


def gap_record(run: dict, references: list[dict]) -> dict:
    """The run against its reference — the mean of the references when there are several —
    their gaps, and the noise floor when two or more are given."""
    reference = references[0] if len(references) == 1 else mean_measures(references)
    record = {
        "run": run,
        "reference": reference,
        "gap": gaps(run, reference),
        "avg_gap_definition": "mean of |run - reference| over "
        + ", ".join(AVG_GAP_TERMS)
        + " (shares in [0, 1]); FID beside it",
        "avg_shortfall_definition": "the same mean counting only where the run is worse than "
        "the reference (erases or keeps less, comes back more); 0 where it is as good or better",
    }
    if len(references) > 1:
        floor = noise_floor(references)
        record["reference_definition"] = (
            f"the per-measure mean of {len(references)} references of different seeds"
        )
        record["each_reference"] = list(references)
        record["second_reference"] = references[1]  # kept for readers of earlier records
        record["noise_floor"] = floor
        a, f = record["gap"]["avg_gap"], floor.get("avg_gap")
        record["indistinguishable_from_retraining"] = (
            None if a is None or f is None else bool(a <= f)
        )
        short = record["gap"]["avg_shortfall"]
        record["no_worse_than_retraining"] = (
            None if short is None or f is None else bool(short <= f)
        )
    return record


def references_of(record: dict) -> list[dict]:
    """Every reference's measures in a gap record, records written before references were
    averaged (``reference`` and ``second_reference``) included."""
    if record.get("each_reference"):
        return list(record["each_reference"])
    second = record.get("second_reference")
    return [record["reference"], *([second] if second else [])]


def regap(record: dict) -> dict:
    """A stored gap record recomputed by today's rule (the references' mean, the leave-one-out
    floor) from the measures it keeps: results of earlier versions compare with new ones."""
    fresh = gap_record(record["run"], references_of(record))
    return {**record, **fresh}


def _key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def measures_dir(folder: Path) -> Path:
    """The cache of one reference's measures, in the user cache and never in the reference's
    folder (it may be a read-only or shared model folder): keyed by the folder's absolute path
    and its UNet weights' size and time, so a retrained reference is measured afresh."""
    from .embedded.digits import cache_dir

    folder = Path(folder).resolve()
    weights = sorted((folder / "unet").glob("*.safetensors")) or sorted((folder / "unet").glob("*"))
    stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
    key = _key({"folder": str(folder), "weights": stamp})
    return cache_dir() / "reference-measures" / f"{folder.name}-{key}"


def stored_measures(folder: Path, settings: dict) -> dict | None:
    """A reference's measures under ``settings`` if some run already took them, else None
    (nothing is computed: reports use this to bring earlier results up to date)."""
    if not (Path(folder) / "unet").is_dir():
        return None
    path = measures_dir(folder) / f"{_key(settings)}.json"
    legacy = Path(folder) / "measures" / path.name  # where earlier versions cached them
    for cached in (path, legacy):
        if cached.exists():
            return json.loads(cached.read_text())["measures"]
    return None


def cached_measures(folder: Path, settings: dict, compute) -> dict:
    """A reference's measures are the same for every run judged alike: cache them (in the user
    cache, :func:`measures_dir`)."""
    measures = stored_measures(folder, settings)
    if measures is None:
        measures = compute()
        path = measures_dir(folder) / f"{_key(settings)}.json"
        atomic_write_json(path, {"settings": settings, "measures": measures})
    return measures


def reference_count(record: dict) -> int:
    """How many retrainings the record's reference is the mean of (1 for older records)."""
    return len(record.get("each_reference") or []) or (2 if "second_reference" in record else 1)


def summary_line(record: dict) -> str:
    g = record["gap"]
    n = reference_count(record)
    which = "reference" if n == 1 else f"references' mean ({n} seeds)"
    line = (
        f"gap to the exact-unlearning {which}: Avg. Gap {g['avg_gap']:.3f} "
        f"(erased {record['run']['erased']:.3f} vs {record['reference']['erased']:.3f}, "
        f"kept {record['run']['kept']:.3f} vs {record['reference']['kept']:.3f}"
    )
    k = f"relearn@{AVG_GAP_RELEARN_STEP}"
    if k in record["run"] and k in record["reference"]:
        line += f", back after {AVG_GAP_RELEARN_STEP} steps {record['run'][k]:.2f} vs {record['reference'][k]:.2f}"
    line += ")"
    if g.get("avg_shortfall") is not None:
        line += f"; Avg. Shortfall {g['avg_shortfall']:.3f} (only where it does worse)"
    if "noise_floor" in record:
        line += f"; noise floor {record['noise_floor']['avg_gap']:.3f}"
    return line
