#!/usr/bin/env python
"""UnlearnCanvas evaluation: UA, IRA and CRA of a style (or object) erasure.

    python eval/unlearncanvas.py --model PIPE --target Van_Gogh \
        --styles unlearncanvas_styles.txt --objects unlearncanvas_objects.txt \
        --style_classifier style_classifier.pth --object_classifier object_classifier.pth

Generates every (style, object, seed) with "A {object} image in {style} style." (seeds
188/288/588/688/888), named ``{style}_{object}_seed{seed}.jpg`` as the benchmark does, into
``OUT/images/`` (resumable; or evaluate existing ones with --images), classifies them with the
user's timm ViT checkpoints (``vit_large_patch16_224``; 51 styles, 20 objects) and writes
``OUT/unlearncanvas.json`` and ``OUT/unlearncanvas.md``.

With no --model and no classifiers it runs on the embedded world: the tiny SD, its styles,
digits as objects, its own prompt ("a handwritten digit {object} in {style} style") and the
judge as both classifiers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.errors import EraseError, cli_main  # noqa: E402
from erase.validate import validate_args  # noqa: E402


def parse_args(argv=None):
    from erase.generators import add_model_args
    from erase.metrics.unlearncanvas import DEFAULT_ARCH, DEFAULT_SEEDS, PROMPT_TEMPLATE

    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--target",
        nargs="+",
        default=None,
        help="the erased style(s) or object(s) (embedded world default: inverted)",
    )
    p.add_argument("--domain", default="style", choices=["style", "object"])
    p.add_argument("--styles", default=None, help="style names, one a line (default: embedded)")
    p.add_argument("--objects", default=None, help="object names, one a line (default: embedded)")
    p.add_argument("--eval_styles", nargs="+", default=None, help="subset of styles to generate")
    p.add_argument("--eval_objects", nargs="+", default=None, help="subset of objects")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument(
        "--template", default=None, help=f"prompt template (default {PROMPT_TEMPLATE!r})"
    )
    p.add_argument("--images", default=None, help="evaluate existing benchmark-named images")
    p.add_argument("--style_classifier", default=None, help="timm checkpoint (51-way)")
    p.add_argument("--object_classifier", default=None, help="timm checkpoint (20-way)")
    p.add_argument("--arch", default=DEFAULT_ARCH)
    p.add_argument("--output_dir", default="outputs/eval/unlearncanvas")
    add_model_args(p)
    return p.parse_args(argv)


def _names_and_classifiers(args):
    """(styles, objects, style_clf, object_clf, template, world) for the benchmark or embedded."""
    from erase.data.prompts_csv import read_names
    from erase.metrics.unlearncanvas import (
        PROMPT_TEMPLATE,
        EmbeddedJudgeClassifier,
        NamedClassifier,
        load_vit_classifier,
    )

    given = [args.styles, args.objects, args.style_classifier, args.object_classifier]
    if all(g is None for g in given):
        from erase.embedded.styles import DIGIT_WORDS, STYLES

        template = args.template or "a handwritten digit {object} in {style} style"
        return (
            list(STYLES),
            list(DIGIT_WORDS),
            EmbeddedJudgeClassifier("style"),
            EmbeddedJudgeClassifier("object"),
            template,
            "embedded",
        )
    if any(g is None for g in given):
        raise EraseError(
            "the benchmark needs all of --styles, --objects, --style_classifier and "
            "--object_classifier (leave all four out for the embedded world)"
        )
    styles, objects = read_names(args.styles), read_names(args.objects)
    style_clf = NamedClassifier(
        load_vit_classifier(args.style_classifier, len(styles), args.arch, args.device),
        styles,
        device=args.device,
    )
    object_clf = NamedClassifier(
        load_vit_classifier(args.object_classifier, len(objects), args.arch, args.device),
        objects,
        device=args.device,
    )
    return styles, objects, style_clf, object_clf, args.template or PROMPT_TEMPLATE, "unlearncanvas"


def _subset(names, chosen, flag):
    if chosen is None:
        return names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise EraseError(f"{flag}: unknown name(s) {', '.join(unknown)}")
    return list(chosen)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    validate_args(args)  # every number and path flag, before any work
    from erase.images import load_images
    from erase.metrics.unlearncanvas import (
        generation_plan,
        predict_records,
        predictions_to_json,
        unlearncanvas_scores,
    )
    from erase.report import write_eval_result

    styles, objects, style_clf, object_clf, template, world = _names_and_classifiers(args)
    domain_names = styles if args.domain == "style" else objects
    targets = args.target or ([domain_names[1]] if world == "embedded" else None)
    if not targets:
        raise EraseError("--target is required: the erased style (or object with --domain object)")
    unknown = [t for t in targets if t not in domain_names]
    if unknown:
        raise EraseError(f"--target {', '.join(unknown)} is not among the {args.domain} names")
    eval_styles = _subset(styles, args.eval_styles, "--eval_styles")
    eval_objects = _subset(objects, args.eval_objects, "--eval_objects")
    ext = "jpg" if world == "unlearncanvas" else "png"
    plan = generation_plan(eval_styles, eval_objects, args.seeds, template, ext=ext)
    out = Path(args.output_dir)
    model_name = None
    if args.images is not None:
        if args.model is not None:
            raise EraseError("give --images or --model, not both")
        folder = Path(args.images)
        if not folder.is_dir():
            raise EraseError(f"image folder {str(folder)!r} does not exist")
        present = [it for it in plan if (folder / it["filename"]).is_file()]
        if not present:
            raise EraseError(
                f"{str(folder)!r} holds none of the expected images "
                f"(e.g. {plan[0]['filename']}); check --styles/--objects/--seeds"
            )
        missing = len(plan) - len(present)
        plan = present
        paths = [folder / it["filename"] for it in plan]
    else:
        from erase.generators import generate_to_folder, load_generator

        gen = load_generator(args.model, args.base, device=args.device)
        model_name = gen.name
        paths = generate_to_folder(
            gen,
            plan,
            out / "images",
            batch_size=args.batch_size,
            num_inference_steps=args.num_inference_steps,
            default_guidance=args.guidance_scale,
        )
        missing = 0
    records = predict_records(plan, load_images(paths), style_clf, object_clf)
    scores = unlearncanvas_scores(records, targets, domain=args.domain)
    summary = {k: scores[k] for k in ("UA", "IRA", "CRA", "n_images")}
    summary["missing_images"] = missing
    data = {
        "model": model_name,
        "summary": summary,
        "scores": scores,
        "conventions": {
            "UnlearnCanvas": f"prompt {template!r}, seeds {args.seeds}, "
            f"{'judge (embedded world)' if world == 'embedded' else args.arch + ' classifiers'}; "
            "per-concept accuracies averaged over concepts",
        },
        "settings": {
            "world": world,
            "target": targets,
            "domain": args.domain,
            "styles": eval_styles,
            "objects": eval_objects,
            "seeds": args.seeds,
        },
        "predictions": predictions_to_json(records),
    }
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    md = [
        "# UnlearnCanvas",
        "",
        f"Model: {model_name or 'images in ' + str(args.images)}; erased {args.domain}: "
        f"{', '.join(targets)}; world: {world}. Prompt template: `{template}`; seeds "
        f"{', '.join(map(str, args.seeds))}.",
        "",
        "| UA ↑ | IRA ↑ | CRA ↑ | images |",
        "|---|---|---|---|",
        f"| {fmt(scores['UA'])} | {fmt(scores['IRA'])} | {fmt(scores['CRA'])} | {len(records)} |",
        "",
        "UA: share of target images not classified as the target; IRA: in-domain accuracy on "
        "the other concepts; CRA: cross-domain accuracy. Per-concept accuracies, averaged.",
    ]
    if missing:
        md += ["", f"{missing} expected images were missing and are not counted."]
    json_path, _ = write_eval_result(out, "unlearncanvas", data, "\n".join(md))
    print(
        f"UA {fmt(scores['UA'])}  IRA {fmt(scores['IRA'])}  CRA {fmt(scores['CRA'])} -> {json_path}"
    )
    return data


if __name__ == "__main__":
    main()
