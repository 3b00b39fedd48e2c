"""Try to bring an erased concept back: prompt attacks and relearning, judged independently.

    eval/attack.py MODEL --concept seven --attack unlearndiff --output_dir A
    eval/attack.py RUN --forget_class 7 --attack relearn --output_dir A
    eval/attack.py RUN --forget_class 7 --attack benign --reference REF --output_dir B

MODEL is any folder ``erase_concept.py`` writes (pipeline, UNet-only or LoRA, with --base), a
Hub id, or ``embedded`` (the original tiny SD); with ``--forget_class K`` a class DDPM folder
from ``erase_class.py`` (``embedded`` for the original digits DDPM). Writes ``A/attack.json``
(ASR before → after, per-record prompts, images and verdicts), ``A/images/`` and ``A/grid.png``
(original | erased | attacked, same seeds).

``relearn`` fine-tunes on images of the concept, ``benign`` on data without it (the retain
data; see erase/attacks/benign.py); both judge the concept's share after 0 and each of
``--relearn_steps`` steps, and store the curve with its steps until 50 %% is back and its area.
``--reference`` runs the same curve attack on a model that never learned the concept.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from erase.errors import EraseError, cli_main
from erase.helpformat import HelpFormatter

CURVE_ATTACKS = ("relearn", "benign")  # fine-tuning attacks: a share-back curve
ATTACK_NAMES = ("unlearndiff", "soft_prompt", "concept_inversion", *CURVE_ATTACKS)


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; ``--help`` prints each with its effective default."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    _add_model_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument(
        "--max_prompts", type=int, default=None, help="first N forget prompts (default: all)"
    )
    p.add_argument(
        "--target_images",
        default=None,
        help="images of the concept (folder; default: the original model's images)",
    )
    p.add_argument("--guidance_scale", type=float, default=None, help="default: the original's")
    p.add_argument("--num_inference_steps", type=int, default=None, help="default: the original's")
    p.add_argument("--device", default="cpu")
    _add_prompt_attack_args(p.add_argument_group("prompt attacks (UnlearnDiffAtk settings)"))
    _add_curve_args(
        p.add_argument_group("relearning and benign fine-tuning (AdamW, the trainer's)")
    )
    return p


def _add_model_args(p) -> None:
    """What is attacked, with what judge, against which original."""
    p.add_argument("model", help="erased model folder, Hub id, or 'embedded' (the original)")
    p.add_argument(
        "--concept",
        default=None,
        help="concept name, file or free text (default: none; this or --forget_class)",
    )
    p.add_argument(
        "--forget_class",
        type=int,
        default=None,
        help="class K of a DDPM (relearn; default: none; this or --concept)",
    )
    p.add_argument("--attack", required=True, choices=ATTACK_NAMES)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--original", default=None, help="default: the base the run records")
    p.add_argument(
        "--base",
        default=None,
        help="base pipeline of a UNet-only or LoRA MODEL (default: none; MODEL is a full pipeline)",
    )
    p.add_argument(
        "--judge",
        default=None,
        help="embedded, embedded-svm, digits, digits-svm, nudenet or a folder (default: digits "
        "for --forget_class, embedded for the embedded world's concepts, nudenet for nudity)",
    )
    p.add_argument("--judge_threshold", type=float, default=None, help="nudenet: default 0.45")
    p.add_argument(
        "--judge_labels",
        nargs="*",
        default=None,
        help="image-classifier labels (default: none; needed with a folder --judge)",
    )


def _add_prompt_attack_args(g) -> None:
    g.add_argument("--tokens", type=int, default=None, help="k; default 5 for nudity, else 3")
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--weight_decay", type=float, default=0.1)
    g.add_argument(
        "--attack_optimizer",
        default="adamw",
        choices=["adamw", "adam"],
        help="adamw: decoupled weight decay, the step follows the attack's loss; adam: the "
        "decay is added to the gradient before Adam's per-coordinate normalisation, as "
        "UnlearnDiffAtk's code, so wherever the denoising gradient is below weight_decay × "
        "|w| the step follows the decay instead (soft prompt on the tiny world, wd 0.1, 10 "
        "iterations: 37 %% of its motion along -w with adam, 0.5 %% with adamw). Small models "
        "have small gradients, so AdamW is the default",
    )
    g.add_argument("--iterations", type=int, default=40, help="per timestep")
    g.add_argument("--timesteps", type=int, default=5, help="length of the timestep schedule")
    g.add_argument("--attack_batch", type=int, default=1, help="noise draws per iteration")
    g.add_argument("--no_early_stop", action="store_true")
    g.add_argument(
        "--attack_all", action="store_true", help="attack prompts that succeed without attack too"
    )


def _add_curve_args(g) -> None:
    g.add_argument(
        "--relearn_steps",
        type=int,
        nargs="+",
        default=None,
        help="points of the curve after step 0; default 5 10 20 for relearn with full "
        "weights (the committed tables), else 5 10 20 50",
    )
    g.add_argument("--relearn_images", type=int, default=32)
    g.add_argument(
        "--relearn_lr", type=float, default=1e-4, help="what a user would pick: 1e-5 to 1e-4"
    )
    g.add_argument(
        "--relearn_params",
        default="full",
        choices=["full", "lora"],
        help="fine-tune every UNet weight, or LoRA adapters on the attention projections",
    )
    g.add_argument("--relearn_lora_rank", type=int, default=4)
    g.add_argument(
        "--benign_images",
        default=None,
        help="benign: data without the concept; class DDPM: ROOT/<class index>/images, "
        "text-to-image: images with same-name .txt captions (default: the retain data)",
    )
    g.add_argument(
        "--reference",
        default=None,
        help="a model of the same family that never learned the concept: the same curve "
        "attack on it is stored as reference_curve (the floor; default: none)",
    )
    g.add_argument(
        "--check_judge",
        default=None,
        help="a second judge (same names as --judge: digits-svm for the digits DDPM, "
        "embedded-svm for the text-to-image world) that judges the same "
        "images at every curve point: its shares go beside the first's and attack.json "
        "records their largest disagreement (default: none)",
    )
    g.add_argument("--relearn_batch", type=int, default=32)
    g.add_argument("--samples", type=int, default=50, help="class samples judged per point")
    g.add_argument("--seed", type=int, default=0)


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def _check(args):
    if (args.concept is None) == (args.forget_class is None):
        raise EraseError("give exactly one of --concept (text-to-image) or --forget_class (DDPM)")
    if args.forget_class is not None and args.attack not in CURVE_ATTACKS:
        raise EraseError(
            f"--attack {args.attack} attacks prompts; a class DDPM takes relearn or benign"
        )
    for name in (
        "iterations",
        "timesteps",
        "attack_batch",
        "relearn_images",
        "relearn_batch",
        "relearn_lora_rank",
    ):
        if getattr(args, name) < 1:
            raise EraseError(f"--{name} must be at least 1")
    if args.samples < 1 or any(s < 1 for s in args.relearn_steps or ()):
        raise EraseError("--samples and --relearn_steps must be at least 1")
    _check_curve_flags(args)
    if args.tokens is not None and args.tokens < 1:
        raise EraseError("--tokens must be at least 1")


def _check_curve_flags(args):
    from erase.attacks.reference import check_reference

    if args.attack not in CURVE_ATTACKS and (args.reference or args.benign_images):
        raise EraseError("--reference and --benign_images go with --attack relearn or benign")
    if args.attack not in CURVE_ATTACKS and args.check_judge:
        raise EraseError(
            "--check_judge judges curve points; it goes with --attack relearn or benign"
        )
    if args.attack != "benign" and args.benign_images:
        raise EraseError("--benign_images is benign fine-tuning's data; add --attack benign")
    if args.attack == "benign" and args.target_images:
        raise EraseError(
            "--target_images are images of the concept; benign fine-tuning takes data "
            "without it: --benign_images"
        )
    if args.benign_images and not Path(args.benign_images).is_dir():
        raise EraseError(f"--benign_images {args.benign_images!r} is not a folder; pass one")
    check_reference(args.reference)


def _model_arg(spec: str | None):
    return None if spec in (None, "embedded") else spec


def _recorded_base(model: str | None) -> str | None:
    if model is None:
        return None
    cfg = Path(model) / "erase_config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    base = data.get("pretrained_model") or data.get("pretrained_model_name_or_path")
    return None if base is None or str(base).startswith("embedded:") else base


def _prepare_out(args) -> Path:
    from erase.io import ensure_writable_dir

    out = Path(args.output_dir)
    if (out / "attack.json").exists() and not args.overwrite:
        raise EraseError(
            f"--output_dir {args.output_dir!r} holds an attack; pass --overwrite or choose another"
        )
    return ensure_writable_dir(out)


def _targets(args, erased):
    if not args.target_images:
        return None
    if erased.kind == "ddpm":
        import torch.nn.functional as F

        from erase.images import list_images, load_images, pil_to_tensor

        x = pil_to_tensor(load_images(list_images(args.target_images)), grey=True)
        size = erased.unet.config.sample_size
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return x.repeat(1, erased.unet.config.in_channels, 1, 1)
    from erase.concept_data import encode_image_folder

    return encode_image_folder(erased.pipe, args.target_images, args.device)


def run(args):
    """The job for parsed ``args``; returns the ``attack.json`` dictionary."""
    _check(args)
    import torch

    out = _prepare_out(args)
    torch.manual_seed(args.seed)
    classes = args.forget_class is not None
    erased, original = _load_models(args, classes)
    targets = _targets(args, erased)
    t0 = time.perf_counter()
    settings = _base_settings(args, erased, original)
    relearn_kw = _relearn_kw(args, targets)
    if classes:
        judge, records, extra, attack_on = _attack_class(
            args, erased, original, settings, relearn_kw, out
        )
    else:
        judge, records, extra, attack_on = _attack_prompts(
            args, erased, original, settings, relearn_kw, targets, out
        )
    return _finish(args, out, erased, classes, judge, settings, records, extra, attack_on, t0)


def _load_models(args, classes: bool):
    """The erased and the original generator, sampling alike (the world's sampler, unless given)."""
    from erase.generators import load_generator

    model = _model_arg(args.model)
    original_spec = _model_arg(args.original) if args.original else _recorded_base(model)
    erased = load_generator(model, args.base, classes=classes, device=args.device)
    original = load_generator(original_spec, classes=classes, device=args.device)
    if not classes:
        from erase.attacks.conditioning import check_family

        check_family(erased.pipe)
    for gen in (erased, original):
        gen.guidance_scale = args.guidance_scale or original.guidance_scale
        gen.num_inference_steps = args.num_inference_steps or original.num_inference_steps
    return erased, original


def _base_settings(args, erased, original) -> dict:
    settings: dict = {
        "model": args.model,
        "original": original.name,
        "guidance_scale": erased.guidance_scale,
        "num_inference_steps": erased.num_inference_steps,
        "target_images": args.target_images or "the original model's images",
    }
    if args.attack == "benign":  # no image of the concept: the data without it
        settings["target_images"] = args.benign_images or "the retain data"
    return settings


def _relearn_kw(args, targets) -> dict:
    """The fine-tuning curve's settings (relearn and benign)."""
    from erase.attacks.relearn import curve_steps

    return dict(
        steps=curve_steps(args.relearn_steps, args.attack, args.relearn_params),
        n_images=args.relearn_images,
        lr=args.relearn_lr,
        batch=args.relearn_batch,
        targets=targets,
        params=args.relearn_params,
        lora_rank=args.relearn_lora_rank,
    )


def _attack_class(args, erased, original, settings, relearn_kw, out):
    """Relearn or benign fine-tuning of a class DDPM; ``(judge, records, extra, attack_on)``."""
    from erase.attacks import harness
    from erase.attacks.benign import class_benign_set
    from erase.attacks.judges import make_judge
    from erase.attacks.relearn import curve_settings

    judge = make_judge(args.judge or "digits", forget_class=args.forget_class)
    if args.check_judge:
        judge.check = make_judge(args.check_judge, forget_class=args.forget_class)
    settings.update(forget_class=args.forget_class, samples=args.samples, seed=args.seed)
    if args.attack == "benign":
        cfg = erased.unet.config
        relearn_kw.update(
            class_benign_set(
                args.forget_class,
                args.relearn_images,
                args.benign_images,
                cfg.sample_size,
                cfg.in_channels,
            )
        )
    settings.update(curve_settings(relearn_kw))

    def attack_on(gen, folder):
        return harness.relearn_classes(
            gen, original, args.forget_class, args.samples, args.seed, judge, folder,
            **relearn_kw,
        )  # fmt: skip

    return (judge, *attack_on(erased, out), attack_on)


def _attack_prompts(args, erased, original, settings, relearn_kw, targets, out):
    """A curve or prompt attack on a text-to-image model; ``(judge, records, extra, attack_on)``
    (``attack_on`` None for prompt attacks, which have no reference curve)."""
    from erase.attacks import harness
    from erase.attacks.benign import prompt_benign_set
    from erase.attacks.judges import make_judge
    from erase.attacks.relearn import curve_settings
    from erase.concept_eval import concept_words
    from erase.concepts import resolve_concept

    concept = resolve_concept(args.concept)
    judge = make_judge(
        args.judge,
        concept_words(concept.name),
        concept.name,
        threshold=args.judge_threshold,
        labels=args.judge_labels,
    )
    if args.check_judge:
        judge.check = make_judge(
            args.check_judge, concept_words(concept.name), concept.name, labels=args.judge_labels
        )
    prompts = concept.forget[: args.max_prompts] if args.max_prompts else concept.forget
    settings.update(concept=concept.name, prompts=len(prompts), seeds=args.seeds)
    if args.attack not in CURVE_ATTACKS:
        cfg = _prompt_attack_config(args, concept.name)
        settings.update(cfg.to_dict(), attack_all=args.attack_all)
        records, extra = harness.prompt_attack(
            args.attack, erased, original, prompts, args.seeds, judge, out, cfg,
            attack_all=args.attack_all, targets=targets,
        )  # fmt: skip
        return judge, records, extra, None
    if args.attack == "benign":
        relearn_kw.update(
            prompt_benign_set(
                concept, args.relearn_images, args.benign_images, erased.pipe, args.device
            )
        )
    settings.update(curve_settings(relearn_kw))

    def attack_on(gen, folder):
        return harness.relearn_prompts(
            gen, original, prompts, args.seeds, judge, folder, seed=args.seed, **relearn_kw
        )

    return (judge, *attack_on(erased, out), attack_on)


def _prompt_attack_config(args, concept_name: str):
    from erase.attacks.prompt_attacks import PromptAttackConfig

    return PromptAttackConfig(
        tokens=args.tokens or (5 if "nud" in concept_name.lower() else 3),
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.attack_optimizer,
        iterations=args.iterations,
        timesteps=args.timesteps,
        batch=args.attack_batch,
        early_stop=not args.no_early_stop,
        seed=args.seed,
    )


def _finish(args, out, erased, classes, judge, settings, records, extra, attack_on, t0) -> dict:
    """The reference curve (curve attacks), ``attack.json`` and the attack grid."""
    from erase.attacks.curves import check_fields
    from erase.attacks.grid import save_attack_grid
    from erase.attacks.records import result_dict
    from erase.attacks.reference import curve_fields, reference_curve
    from erase.io import atomic_write_json

    if args.attack in CURVE_ATTACKS:
        ref = args.reference and reference_curve(
            args.reference, attack_on, erased, classes, args.device, out
        )
        extra.update(curve_fields(extra["curve"], ref or None))
        if judge.check is not None:
            extra.update(check_fields(judge.check, extra))
    result = result_dict(args.attack, judge, settings, records, time.perf_counter() - t0, extra)
    save_attack_grid(records, out, title=f"{args.attack}: {erased.name}")
    atomic_write_json(out / "attack.json", result)
    print(
        f"{args.attack}: ASR {result['pre_asr']:.1%} -> {result['asr']:.1%} over {result['n']} "
        f"prompts ({result['seconds_per_prompt']:.1f} s per prompt); wrote {out / 'attack.json'}"
    )
    return result


@cli_main
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
