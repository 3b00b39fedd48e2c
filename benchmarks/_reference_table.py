"""The equal-erasure comparison against the model that never learned the concept.

Each held-out run of ``frontier.py --equal_erasure --reference`` measured itself and its
concept's exact-unlearning reference alike (``metrics.json``'s ``reference_gap``): erased share,
kept accuracy, FID and the relearning curve. This table puts the reference's own numbers — the
floor for the robustness work — next to every method's, concept by concept, with the noise floor
(each reference's Avg. Gap to the others' mean) where the comparison trained several seeds.
"""

from __future__ import annotations

import statistics

from _frontier_report import _p

from erase.reference_gap import mean_measures, references_of

STEPS = (5, 10, 20)
MEASURES = ("erased", "kept", "fid", *(f"relearn@{s}" for s in STEPS))


def gap_numbers(metrics: dict) -> dict:
    """What a result keeps of the run's reference-gap record, recomputed by today's rule
    (``erase.reference_gap.regap``: against the references' mean): the run's and the
    reference's measures, every reference's own, and the noise floor's Avg. Gap (where the run
    had two or more references); {} without a record."""
    from erase.reference_gap import regap

    record = metrics.get("reference_gap")
    if not isinstance(record, dict) or not isinstance(record.get("reference"), dict):
        return {}
    record = regap(record)
    keep = kept_measures
    each = [keep(m) for m in record.get("each_reference") or []]
    return {
        "gap_run": keep(record.get("run") or {}),
        "gap_reference": keep(record["reference"]),
        "noise_floor": (record.get("noise_floor") or {}).get("avg_gap"),
        "each_reference": each or None,
        "avg_gap": record["gap"]["avg_gap"],
        "avg_shortfall": record["gap"]["avg_shortfall"],
    }


def kept_measures(m: dict) -> dict:
    """The measures a result keeps of a model: the table's, where they are numbers."""
    return {k: m.get(k) for k in MEASURES if isinstance(m.get(k), (int, float))}


def references_of_result(result: dict) -> list[dict]:
    """A result's references' measures (``erase.reference_gap.references_of`` on the keys a
    result stores them under)."""
    return references_of(
        {
            "each_reference": result.get("each_reference"),
            "reference": result["gap_reference"],
            "second_reference": result.get("second_reference"),
        }
    )


def _mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.mean(xs) if xs else None


def _row(lead: list, m: dict, gap=None, short=None) -> str:
    """One table row: the leading cells (concept, model, runs), then ``m``'s measures."""
    back = " / ".join(_p(m.get(f"relearn@{s}")) for s in STEPS)
    fid = "–" if m.get("fid") is None else f"{m['fid']:.2f}"
    cells = [*map(str, lead), _p(m.get("erased")), _p(m.get("kept")), fid, back, _g(gap)]
    return "| " + " | ".join([*cells, _g(short)]) + " |"


def _g(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def reference_table(results: list[dict], concepts: list[str], labels) -> list[str]:
    """Per held-out concept: each reference and, with several, their mean and the noise floor;
    then each method's mean over its runs; and, per method, on how many concepts `lur`'s mean Avg. Gap is below it."""
    runs = [r for r in results if "error" not in r and r.get("gap_reference")]
    if not runs:
        return []
    lines = [
        "",
        "## Against the model that never learned the concept",
        "",
        "Each run and its concept's exact-unlearning references (the same recipe retrained "
        "without the concept's data; seed 0, and further seeds where the comparison trained "
        "them) measured alike: erased share and kept accuracy by the run's own evaluation, the "
        "share back after 5 / 10 / 20 steps of the relearning attack (32 images, AdamW 1e-4). "
        "Method rows are means over their runs. Avg. Gap: mean |run − reference| over erased, "
        "kept and the share back after 10 steps, where the reference is the per-measure mean "
        "of the concept's references; Avg. Shortfall counts only where the run is worse. The "
        "noise floor is each reference's Avg. Gap to the mean of the others, averaged (two: "
        "the gap between them): a run at or below it cannot be told from retraining.",
        "",
        "| concept | model | runs | erased (%) | kept (%) | FID | back after 5 / 10 / 20 steps "
        "(%) ↓ | Avg. Gap ↓ | Avg. Shortfall ↓ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    gap_by = {}
    for concept in concepts:
        mine = [r for r in runs if r["job"]["concept"] == concept]
        if not mine:
            continue
        refs = max((references_of_result(r) for r in mine), key=len)  # a concept's widest set
        for seed, ref in enumerate(refs):
            lead = [f"**{concept}**" if seed == 0 else concept, f"never learned (seed {seed})", 1]
            lines.append(_row(lead, ref))
        if len(refs) > 1:
            floor = next(
                r.get("noise_floor") for r in mine if len(references_of_result(r)) == len(refs)
            )
            lead = [
                concept,
                f"never learned, mean of {len(refs)} (gap: the noise floor)",
                len(refs),
            ]
            lines.append(_row(lead, mean_measures(refs), floor))
        for label in labels:
            rs = [r for r in mine if r["job"]["label"] == label]
            if not rs:
                continue
            m = {k: _mean([r["gap_run"].get(k) for r in rs]) for k in MEASURES}
            gap = _mean([r.get("avg_gap") for r in rs])
            gap_by.setdefault(label, {})[concept] = gap
            short = _mean([r.get("avg_shortfall") for r in rs])
            lines.append(_row([concept, label, len(rs)], m, gap, short))
    return lines + _lur_against(gap_by)


def _lur_against(gap_by: dict) -> list[str]:
    """On how many concepts lur's mean Avg. Gap is below each other method's."""
    mine = gap_by.get("lur") or {}
    out = []
    for label, theirs in gap_by.items():
        shared = [c for c in mine if c in theirs and None not in (mine[c], theirs[c])]
        if label == "lur" or not shared:
            continue
        below = [c for c in shared if mine[c] < theirs[c]]
        out.append(f"- `lur` below `{label}`: {len(below)} of {len(shared)} concepts")
    if not out:
        return []
    return ["", "`lur`'s mean Avg. Gap against each method's, concept by concept:", "", *out]
