"""The class task's gap to exact unlearning: the run and its references, measured alike.

Every model — the erased run, reference seed 0, reference seed 1 — is judged with the final
evaluation's judge, samples and seeds (``evaluate_class_erasure``) and attacked with the same
relearning probe (``erase.attacks.harness.relearn_classes``: 32 real images of the class,
AdamW 1e-4, batch 32, judged after 5, 10 and 20 steps). A reference's measures are cached in the
user cache (``erase.reference_gap.measures_dir``), so the comparison measures each reference once.
"""

from __future__ import annotations

from pathlib import Path

from .attacks.relearn import RELEARN_DEFAULTS
from .reference_gap import (
    RELEARN_STEPS,
    cached_measures,
    curve_points,
    gap_record,
    measures_dir,
    measures_from,
    summary_line,
)


def reference_folders(specs: list[str], forget_classes) -> list[Path]:
    """``auto`` at position i is the cached digits reference of seed i; else a folder."""
    from .reference import check_reference_specs, resolve_reference

    check_reference_specs(specs)
    return [resolve_reference(s, forget_classes, seed=i) for i, s in enumerate(specs)]


def relearn_settings(forget_class: int, seed: int) -> dict:
    return {
        "forget_class": int(forget_class),
        "steps": list(RELEARN_STEPS),
        "n_images": RELEARN_DEFAULTS["n_images"],
        "lr": RELEARN_DEFAULTS["lr"],
        "batch": RELEARN_DEFAULTS["batch"],
        "samples": 50,
        "seed": seed,
        # a second judge of another model family on every point, as benchmarks/resist.py's
        # attack has, so that benchmark reads the curve from here instead of relearning again
        "check_judge": "digits-svm",
    }


def relearn_share_curve(model_dir, original, settings: dict, workdir: Path) -> list[dict]:
    """The relearning curve of the DDPM in ``model_dir`` (fine-tuned on a fresh copy)."""
    from .attacks.harness import relearn_classes
    from .attacks.judges import DigitsClassifierJudge, make_judge
    from .generators import load_generator

    k = settings["forget_class"]
    judge = DigitsClassifierJudge(k)
    if settings.get("check_judge"):
        judge.check = make_judge(settings["check_judge"], forget_class=k)
    model = load_generator(str(model_dir), classes=True)
    model.guidance_scale, model.num_inference_steps = (
        original.guidance_scale,
        original.num_inference_steps,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    _, extra = relearn_classes(
        model,
        original,
        k,
        settings["samples"],
        settings["seed"],
        judge,
        workdir,
        settings["steps"],
        settings["n_images"],
        settings["lr"],
        settings["batch"],
    )
    return [curve_points(p) for p in extra["curve"]]


def class_gap(out: Path, args, metrics: dict, classifier, eval_cfg, real_by_class, device) -> dict:
    """Measure the erased run in ``out`` and its references alike; the gap record."""
    import torch

    from .class_eval import evaluate_class_erasure
    from .generators import load_generator
    from .reference import training_cost

    refs = reference_folders(args.reference, args.forget_class)
    digits = args.pretrained_model is None
    original = load_generator(args.pretrained_model, classes=True)
    relearn = relearn_settings(sorted(args.forget_class)[0], args.seed) if digits else None

    def measures(model_dir: Path, workdir: Path, model_metrics: dict | None = None) -> dict:
        if model_metrics is None:
            ref = load_generator(str(model_dir), classes=True).unet.to(device)
            model_metrics, _, _ = evaluate_class_erasure(
                ref,
                original.unet.to(device).float(),
                original.scheduler,
                classifier,
                args.forget_class,
                eval_cfg,
                classes=None if real_by_class is None else sorted(real_by_class),
                real_images_by_class=real_by_class,
            )
        curve = relearn_share_curve(model_dir, original, relearn, workdir) if relearn else None
        return measures_from(model_metrics, curve)

    torch.manual_seed(args.seed)
    run = measures(out, out / "reference_gap" / "relearn", metrics)
    settings = {"eval": eval_cfg, "relearn": relearn, "forget": sorted(args.forget_class)}
    references = [
        cached_measures(f, settings, lambda f=f: measures(f, measures_dir(f) / "relearn"))
        for f in refs
    ]
    record = gap_record(run, references)
    record["references"] = [{"folder": f.name, "training": training_cost(f)} for f in refs]
    record["relearning"] = relearn or "not measured: the relearning probe needs the digits world"
    print(summary_line(record))
    return record
