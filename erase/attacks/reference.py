"""The floor for robustness (DESIGN §13): the same curve attack on a reference model of the
same family that never learned the concept, stored next to the attacked model's curve.

An erasure whose share comes back no faster than the reference's has removed the concept
rather than hidden it; the per-step gap says by how much it falls short, and
``over_reference_at`` the budgets at which an attacker keeping its best checkpoint gets more
back than from the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import EraseError
from .curves import curve_summary, over_reference, reference_gap


def check_reference(spec: str | None) -> None:
    """Before any heavy work: the reference must be a folder (or the embedded original)."""
    if spec not in (None, "embedded") and not Path(spec).exists():
        raise EraseError(
            f"--reference {spec!r} does not exist; give a model folder of the same family "
            "that never learned the concept (e.g. a DDPM trained without the class)"
        )


def curve_fields(curve: list[dict], reference: list[dict] | None = None) -> dict:
    """What attack.json adds for a curve attack: its summary, and with a reference the
    reference's curve, its summary, the per-step gap (attacked − reference) and the budgets
    at which the attacker's best within the budget beats the reference's (none: at the floor)."""
    fields = curve_summary(curve)
    if reference is not None:
        fields["reference_curve"] = reference
        fields.update(curve_summary(reference, prefix="reference_"))
        fields["reference_gap"] = reference_gap(curve, reference)
        fields["over_reference_at"] = over_reference(curve, reference)
    return fields


def reference_curve(
    spec: str, attack_on: Callable, like, classes: bool, device: str, out: Path
) -> list[dict]:
    """Load the reference, give it ``like``'s sampler, run ``attack_on(gen, folder)`` on it
    (its images go to ``out/reference``) and return its curve."""
    from ..generators import load_generator

    ref = load_generator(None if spec == "embedded" else spec, classes=classes, device=device)
    ref.guidance_scale, ref.num_inference_steps = like.guidance_scale, like.num_inference_steps
    _, extra = attack_on(ref, out / "reference")
    return extra["curve"]
