"""The model card's answer to what a user came for: is the concept gone, and how close is the
model now to one that never learned it? One section, alike for class and concept erasure, from
the run's own records: its evaluation (with the interval of the erased share and the second
judge's verdict), the stopping rule, and the gap to the exact-unlearning reference."""

from __future__ import annotations

from .reference_gap import AVG_GAP_RELEARN_STEP, reference_count, summary_line
from .stopping import describe_stop


def is_it_gone(
    erased: float | None,
    interval: list[float] | None,
    n_images: int | None,
    judge: str | None,
    check_erased: float | None,
    stopping,
    reference_gap: dict | None,
    unevaluated: str = "`--no_eval`, or no judge for this data",
) -> list[str]:
    """Markdown lines of the section ``## Is it gone?``; ``unevaluated`` says why, and what
    measures it instead, where the run judged nothing."""
    lines = ["## Is it gone?", ""]
    if erased is None:
        lines.append(f"- **Erased**: not evaluated here ({unevaluated}).")
    else:
        line = f"- **Erased**: {erased:.1%} of {n_images} new images of it no longer show it"
        if interval:
            line += f"; 95 % interval {interval[0]:.1%}–{interval[1]:.1%}"
        if check_erased is not None:
            line += f"; a second judge of another model family: {check_erased:.1%}"
        lines.append(line + "." + (f" Judge: {judge}." if judge else ""))
    if stopping is not None:
        lines.append(f"- **Stopping rule**: {describe_stop(stopping)}.")
    lines.append(
        f"- **Against a model that never learned it**: {_against_reference(reference_gap)}"
    )
    return [*lines, ""]


def _against_reference(record: dict | None) -> str:
    if not record:
        return (
            "not measured; `--reference auto` (the embedded world) or `--reference FOLDER` (a "
            "model you retrained without the concept) measures it."
        )
    line = summary_line(record)
    text = line[0].upper() + line[1:] + "."  # not str.capitalize: it lowercases "Avg. Gap"
    same = record.get("indistinguishable_from_retraining")
    if same is True:
        text += " Within the noise floor: these measures cannot tell it from retraining."
    elif same is False:
        gap, floor = record["gap"]["avg_gap"], record["noise_floor"]["avg_gap"]
        ratio = f" ({gap / floor:.1f}× the floor)" if floor else ""
        text += f" Above the noise floor{ratio}: it can be told from retraining"
        if record.get("no_worse_than_retraining"):
            text += ", but only by doing better than it: its Avg. Shortfall is within the floor"
        text += "."
    else:
        text += (
            " One reference: `--reference auto auto auto` measures against the mean of three "
            "retrainings and adds the noise floor."
        )
    k = f"relearn@{AVG_GAP_RELEARN_STEP}"
    run, ref = record.get("run", {}), record.get("reference", {})
    n = reference_count(record)
    never = (
        "in a model that never learned it, {}"
        if n == 1
        else f"in {n} models that never learned it, {{}} on average"
    )
    if run.get(k) is not None and ref.get(k) is not None:
        text += (
            f" After {AVG_GAP_RELEARN_STEP} relearning steps it is back in {run[k]:.0%} of "
            f"the samples; {never.format(f'{ref[k]:.0%}')}."
        )
    return text
