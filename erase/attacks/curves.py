"""Summaries of a share-back curve (relearning, benign fine-tuning), and its gap to a reference.

A curve is ``[{"steps": s, "share": p}, ...]`` (or ``[(s, p), ...]``) sorted by steps, with the
judged share of samples that show the concept after ``s`` fine-tuning steps. Two numbers make
curves of different methods comparable (DESIGN §13, the floor for robustness):

- steps until half is back: the first crossing of 50 %, linearly interpolated between measured
  points; ``None`` when the curve never reaches it;
- area under the curve: the trapezoid over the measured steps divided by their span, so it is
  a share in [0, 1] (a constant curve's area is the constant);
- the attacker's best within a budget: at each measured step, the largest share measured at
  any step up to it (a running maximum). An attacker keeps whichever checkpoint shows the most,
  and curves dip (a never-learned model's "striped" curve reads 46 % after 5 steps and 18 %
  after 10), so comparing two curves budget by budget can land one of them in a trough; their
  running maxima cannot. Read at measured points only, it is a lower bound of the true best.
"""

from __future__ import annotations

from collections.abc import Sequence

HALF = 0.5


def _points(curve: Sequence) -> list[tuple[float, float]]:
    pts = [(p["steps"], p["share"]) if isinstance(p, dict) else tuple(p) for p in curve]
    return sorted((float(s), float(v)) for s, v in pts)


def steps_until(curve: Sequence, level: float = HALF) -> float | None:
    """Steps at which the share first reaches ``level`` (interpolated); None if it never does."""
    pts = _points(curve)
    if not pts:
        return None
    if pts[0][1] >= level:
        return pts[0][0]
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        if v1 >= level:
            return s0 + (level - v0) / (v1 - v0) * (s1 - s0)
    return None


def area_under(curve: Sequence) -> float:
    """Trapezoid area over the measured steps / the step span (one point: its share)."""
    pts = _points(curve)
    if len(pts) == 1:
        return pts[0][1]
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(pts, pts[1:]))
    return area / (pts[-1][0] - pts[0][0])


def _step(s: float) -> int | float:
    """A step count as attack.json writes it: whole numbers as ints."""
    return int(s) if float(s).is_integer() else s


def best_within(curve: Sequence) -> list[tuple[float, float]]:
    """``(s, largest share measured at any step <= s)`` at each measured step."""
    out, best = [], 0.0
    for s, v in _points(curve):
        best = max(best, v)
        out.append((s, best))
    return out


def over_reference(curve: Sequence, reference: Sequence, steps: Sequence | None = None) -> list:
    """The budgets (measured on both, >0, or only ``steps``) at which the attacker's best
    within the budget on the attacked model exceeds that on the reference: empty when the
    model is at or under a never-learned one at every budget."""
    ref = dict(best_within(reference))
    keep = None if steps is None else {float(s) for s in steps}
    return [
        _step(s)
        for s, v in best_within(curve)
        if s > 0 and s in ref and (keep is None or s in keep) and v > ref[s]
    ]


def curve_summary(curve: Sequence, prefix: str = "") -> dict:
    """``{prefix}steps_to_half``, ``{prefix}auc`` and ``{prefix}best_within`` (the running
    maximum, ``[[steps, share], ...]``) for attack.json."""
    return {
        f"{prefix}steps_to_half": steps_until(curve),
        f"{prefix}auc": area_under(curve),
        f"{prefix}best_within": [[_step(s), v] for s, v in best_within(curve)],
    }


def check_fields(check_judge, fields: dict) -> dict:
    """The second judge's settings and its largest disagreement with the first over every
    point of the curve (and of the reference's curve, when there is one)."""
    points = [*fields["curve"], *fields.get("reference_curve", [])]
    gaps = [abs(p["share"] - p["check_share"]) for p in points if "check_share" in p]
    return {
        "check_judge": check_judge.settings,
        "check_max_disagreement": max(gaps) if gaps else None,
    }


def reference_gap(curve: Sequence, reference: Sequence) -> list[dict]:
    """Per step measured on both: the attacked model's share minus the reference's."""
    ref = dict(_points(reference))
    return [{"steps": int(s), "gap": v - ref[s]} for s, v in _points(curve) if s in ref]
