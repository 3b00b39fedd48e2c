#!/usr/bin/env python
"""Count exposed body parts with NudeNet v3 in a folder of images or in a model's samples.

    python eval/nudity.py --images DIR --output_dir OUT
    python eval/nudity.py --model PIPE --prompts unsafe-prompts4703.csv --categories sexual \
        --output_dir OUT          # I2P: per-prompt seed and guidance; resumable

Writes ``OUT/nudity.json`` (per-image detections, per-class counts, images with any exposed
part) and ``OUT/nudity.md``. Generated images go to ``OUT/images/`` and are kept, so a rerun
only generates what is missing. With neither --images nor --model, samples the embedded
tiny SD (offline; a sanity run: digits hold no nudity).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.errors import EraseError, cli_main  # noqa: E402
from erase.validate import validate_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    from erase.generators import add_model_args
    from erase.metrics.nudity import DEFAULT_THRESHOLD

    p.add_argument("--images", default=None, help="evaluate the images in this folder")
    p.add_argument(
        "--prompts",
        default=None,
        help="I2P-format CSV (or any CSV with a prompt column, a text file, or text); "
        "default with a model: the embedded world's digit prompts",
    )
    p.add_argument("--categories", nargs="+", default=None, help="I2P categories, e.g. sexual")
    p.add_argument(
        "--nudity_above", type=float, default=None, help="keep prompts with nudity_percentage > X"
    )
    p.add_argument("--limit", type=int, default=None, help="first N prompts after filtering")
    p.add_argument("--num_images_per_prompt", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed for prompts that carry none")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--output_dir", default="outputs/eval/nudity")
    add_model_args(p)
    return p.parse_args(argv)


def _records(args):
    from erase.data.prompts_csv import load_i2p, load_prompt_csv, load_prompts

    if args.prompts is None:
        from erase.embedded.styles import DIGIT_WORDS, digit_prompt

        return load_prompts([digit_prompt(w) for w in DIGIT_WORDS])
    path = Path(args.prompts)
    if path.suffix.lower() == ".csv":
        if args.categories or args.nudity_above is not None:
            return load_i2p(
                path, categories=args.categories, nudity_above=args.nudity_above, limit=args.limit
            )
        recs = load_prompt_csv(path, limit=args.limit, keep_empty=True)
        if not recs:
            raise EraseError(f"{args.prompts!r} holds no prompts")
        return recs
    if args.categories or args.nudity_above is not None:
        raise EraseError("--categories and --nudity_above need an I2P-format CSV as --prompts")
    recs = load_prompts(args.prompts)
    return recs[: args.limit] if args.limit else recs


def generation_items(records, num_images_per_prompt: int, default_seed: int) -> list[dict]:
    """One item per (prompt, k): the prompt's own seed (+k) where it has one, else seed+index."""
    items = []
    for r in records:
        case = r.case_number if r.case_number is not None else r.index
        base = r.seed if r.seed is not None else default_seed + r.index * num_images_per_prompt
        for k in range(num_images_per_prompt):
            items.append(
                {
                    "prompt": r.prompt,
                    "seed": int(base) + k,
                    "guidance": r.guidance,
                    "case_number": case,
                    "filename": f"{case:05d}_{k}.png",
                }
            )
    return items


@cli_main
def main(argv=None):
    args = parse_args(argv)
    validate_args(args)  # every number and path flag, before any work
    from erase.generators import check_positive
    from erase.images import list_images, load_images
    from erase.metrics.nudity import DETECTOR_NAME, NudityDetector
    from erase.report import markdown_kv_table, write_eval_result

    check_positive("--num_images_per_prompt", args.num_images_per_prompt)
    check_positive("--batch_size", args.batch_size)
    detector = NudityDetector(threshold=args.threshold)  # validates the threshold first
    out = Path(args.output_dir)
    meta: dict = {}
    if args.images is not None:
        if args.model is not None:
            raise EraseError("give --images or --model, not both")
        paths = list_images(args.images)
        items = [{"filename": p.name} for p in paths]
        meta["images"] = str(args.images)
        model_name = None
    else:
        from erase.generators import generate_to_folder, load_generator

        records = _records(args)
        items = generation_items(records, args.num_images_per_prompt, args.seed)
        gen = load_generator(args.model, args.base, device=args.device)
        model_name = gen.name
        if args.guidance_scale is not None:  # an explicit flag overrides per-prompt guidance
            for it in items:
                it["guidance"] = args.guidance_scale
        paths = generate_to_folder(
            gen,
            items,
            out / "images",
            batch_size=args.batch_size,
            num_inference_steps=args.num_inference_steps,
        )
        meta.update(
            prompts=args.prompts or "embedded digit prompts",
            categories=args.categories,
            nudity_above=args.nudity_above,
            limit=args.limit,
            num_images_per_prompt=args.num_images_per_prompt,
            num_inference_steps=args.num_inference_steps or gen.num_inference_steps,
            guidance="per prompt (evaluation_guidance)"
            if args.guidance_scale is None and any(it.get("guidance") for it in items)
            else (args.guidance_scale or gen.guidance_scale),
        )
    images = load_images(paths)
    result = detector.evaluate(images, names=[p.name for p in paths])
    summary = result.summary()
    per_image = []
    for it, entry in zip(items, result.images):
        per_image.append({**{k: v for k, v in it.items() if k != "filename"}, **entry})
    data = {
        "model": model_name,
        "summary": summary,
        "conventions": {
            "NudeNet": f"{DETECTOR_NAME}, *_EXPOSED classes at threshold {args.threshold}",
        },
        "settings": meta,
        "per_image": per_image,
    }
    md = [
        "# NudeNet evaluation",
        "",
        f"Model: {model_name or 'images in ' + str(args.images)}. Detector: {DETECTOR_NAME}; "
        f"every `*_EXPOSED` class counted at score ≥ {args.threshold}.",
        "",
    ]
    md += markdown_kv_table(
        {
            "images": summary["n_images"],
            "images with any exposed part": summary["images_with_exposed"],
            "share of images with any exposed part": summary["exposed_rate"],
            "exposed detections": summary["total_exposed_detections"],
        }
    )
    md += ["| class | detections | images |", "|---|---|---|"]
    md += [
        f"| {c} | {summary['per_class_detections'][c]} | {summary['per_class_images'][c]} |"
        for c in summary["per_class_detections"]
    ]
    json_path, _ = write_eval_result(out, "nudity", data, "\n".join(md))
    print(
        f"{summary['images_with_exposed']}/{summary['n_images']} images with exposed parts "
        f"(threshold {args.threshold}) -> {json_path}"
    )
    return data


if __name__ == "__main__":
    main()
