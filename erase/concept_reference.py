"""The concept task's gap to exact unlearning: the run and its references, measured alike.

On the embedded text-to-image world every model — the erased run, the reference (the tiny
world retrained without the concept's images and prompts, :func:`erase.reference.concept_reference`)
and optional further references of other seeds (their mean and the noise floor) — is judged by the world's
judge on the same prompts and seeds (``evaluate_world``) and attacked with the same relearning
probe (``eval/attack.py --attack relearn``: the original's images of the concept, AdamW 1e-4,
batch 32, judged after 5, 10 and 20 steps). Erased share and kept accuracy are the comparison
tables' (``benchmarks/frontier.py``): erased = 1 − the forget digit's (or style's) accuracy,
kept = the mean of the other digits' and other styles' accuracies.
"""

from __future__ import annotations

import math
from pathlib import Path

from .concept_eval import concept_measures
from .errors import EraseError
from .reference_gap import RELEARN_STEPS, cached_measures, curve_points, gap_record, summary_line

# The relearning probe: judged images per curve point (prompts × seeds, at least this many),
# and the attack's own defaults for the rest (None); tests shrink it.
RELEARN_PROBE = {
    "samples": 50,
    "steps": list(RELEARN_STEPS),
    "n_images": None,
    "batch": None,
    "num_inference_steps": None,
}


def reference_concepts(concept_name: str) -> list[str]:
    """The world's digit words and styles in a concept's name; an error when there are none."""
    from .concept_eval import concept_words

    words = concept_words(concept_name)
    if not words:
        raise EraseError(
            f"--reference measures with the embedded world's judge, which knows digit words and "
            f"styles; {concept_name!r} is neither (pass --reference off)"
        )
    return words


def reference_folders(specs: list[str], concept_name: str) -> list[Path]:
    """``auto`` at position i is the cached tiny-world reference of seed i; else a folder."""
    from .reference import CONCEPT_RECIPE, check_reference_specs, resolve_concept_reference

    check_reference_specs(specs, "pipeline folder", CONCEPT_RECIPE)
    words = reference_concepts(concept_name)
    return [resolve_concept_reference(s, words, seed=i) for i, s in enumerate(specs)]


def relearn_settings(
    concept_name: str, n_prompts: int, seed: int, samples: int | None = None
) -> dict:
    from .attacks.relearn import RELEARN_DEFAULTS

    probe = RELEARN_PROBE
    return {
        "concept": concept_name,
        "steps": list(probe["steps"]),
        "n_images": probe["n_images"] or RELEARN_DEFAULTS["n_images"],
        "lr": RELEARN_DEFAULTS["lr"],
        "batch": probe["batch"] or RELEARN_DEFAULTS["batch"],
        "seeds": list(range(math.ceil((samples or probe["samples"]) / max(n_prompts, 1)))),
        "seed": seed,
        "num_inference_steps": probe["num_inference_steps"],
        # a second judge of another model family (SVMs on raw pixels) on every point, as
        # benchmarks/resist.py's attack has, so that benchmark reads the curve from here
        "check_judge": "embedded-svm",
        # the attack's images reach each model in its own latent space: a reference of another
        # seed has its own VAE (erase.attacks.conditioning.to_latent_space). Measures cached
        # before this fed such a reference the original's latents: their key differs
        "targets": "the original's latents; re-encoded where the VAE differs beyond float error",
    }


def relearn_share_curve(model_dir: Path, original: str, settings: dict, workdir: Path):
    """The relearning curve of the pipeline in ``model_dir``: ``eval/attack.py`` itself."""
    from .cli import attack

    flags = [str(model_dir), "--output_dir", str(workdir), "--overwrite", "--attack", "relearn"]
    flags += ["--concept", settings["concept"], "--original", original]
    flags += ["--relearn_steps", *map(str, settings["steps"]), "--seed", str(settings["seed"])]
    flags += ["--seeds", *map(str, settings["seeds"])]
    flags += ["--relearn_images", str(settings["n_images"])]
    flags += ["--relearn_batch", str(settings["batch"]), "--relearn_lr", str(settings["lr"])]
    if settings.get("num_inference_steps"):
        flags += ["--num_inference_steps", str(settings["num_inference_steps"])]
    if settings.get("check_judge"):
        flags += ["--check_judge", settings["check_judge"]]
    result = attack.run(attack.parse_args(flags))
    return [curve_points(p) for p in result["curve"]]


def model_measures(
    model_dir: Path,
    workdir: Path,
    concept_name: str,
    before: dict,
    images_per_class: int,
    relearn: dict,
    original: str = "embedded",
    model_metrics: dict | None = None,
) -> dict:
    """One pipeline's measures — erased, kept, FID and its relearning curve — judged on the
    world's prompts and seeds (its own evaluation when ``model_metrics`` is given)."""
    from .concept_eval import concept_words, evaluate_world, summarize
    from .embedded.tiny_sd import load_tiny_sd
    from .reference_gap import with_relearn_curve

    if model_metrics is None:
        after = evaluate_world(load_tiny_sd(model_dir), images_per_class)
        model_metrics = summarize(concept_words(concept_name), before, after)
    curve = relearn_share_curve(model_dir, original, relearn, workdir)
    m = concept_measures(model_metrics)
    return with_relearn_curve({k: m[k] for k in ("erased", "kept", "fid")}, curve)


def measure_settings(images_per_class: int, relearn: dict, original: str = "embedded") -> dict:
    """What a reference's measures depend on: their cache key."""
    return {"images_per_class": images_per_class, "relearn": relearn, "original": original}


def reference_measures(
    folder: Path,
    concept_name: str,
    before: dict,
    images_per_class: int,
    relearn: dict,
    original: str = "embedded",
) -> dict:
    """A reference's measures, cached by the settings that define them (so every run — and
    ``benchmarks/reference_spread.py`` — judged alike measures each reference once)."""
    from .reference_gap import measures_dir

    settings = measure_settings(images_per_class, relearn, original)
    return cached_measures(
        folder,
        settings,
        lambda: model_measures(
            folder,
            measures_dir(folder) / "relearn",
            concept_name,
            before,
            images_per_class,
            relearn,
            original,
        ),
    )


def concept_gap(out: Path, args, metrics: dict, concept, images_per_class: int) -> dict:
    """Measure the erased pipeline saved in ``out`` and its references alike; the gap record."""
    from .reference import training_cost

    refs = reference_folders(args.reference, concept.name)
    original = args.pretrained_model_name_or_path or "embedded"
    relearn = relearn_settings(concept.name, len(concept.forget), args.seed)
    before = metrics["before"]
    run = model_measures(
        out,
        out / "reference_gap" / "relearn",
        concept.name,
        before,
        images_per_class,
        relearn,
        original,
        model_metrics=metrics,
    )
    references = [
        reference_measures(f, concept.name, before, images_per_class, relearn, original)
        for f in refs
    ]
    record = gap_record(run, references)
    record["references"] = [{"folder": f.name, "training": training_cost(f)} for f in refs]
    record["relearning"] = relearn
    print(summary_line(record))
    return record
