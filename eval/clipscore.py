#!/usr/bin/env python
"""CLIPScore (100 · max(cos, 0)) of images against their prompts.

    python eval/clipscore.py --images DIR --captions captions.csv --clip_model CLIP_DIR
    python eval/clipscore.py --model PIPE --prompts coco_30k.csv --limit 1000 --clip_model CLIP_DIR

``--captions``: a CSV with an image column (``image``/``file``/``filename``) and ``prompt``, or
a ``manifest.json`` written by scripts/sample_grid.py. CLIP backends: a local transformers
``CLIPModel`` folder (default when --clip_model is given), open_clip (``--clip_backend open_clip
--clip_model ViT-B-32 --clip_checkpoint FILE``), or the embedded tiny CLIP (default). Also
reports the score against mismatched captions (each image with another image's caption), a
floor that tells what "matching" is worth for the CLIP model used. Writes
``OUT/clipscore.json`` and ``OUT/clipscore.md``; generated images stay in ``OUT/images/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.errors import EraseError, cli_main  # noqa: E402
from erase.validate import prompts_arg, validate_args  # noqa: E402

IMAGE_COLUMNS = ("image", "file", "filename", "path")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    from erase.generators import add_model_args

    p.add_argument("--images", default=None, help="folder of images to score")
    p.add_argument(
        "--captions", default=None, help="CSV or manifest.json pairing images to prompts"
    )
    p.add_argument(
        "--prompts",
        nargs="+",
        default=None,
        help="prompts to generate from: CSV with a prompt column (COCO), a text file, or "
        "prompts ('A|B' is read as A and B); default: the embedded world's digit and style prompts",
    )
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="for prompts without a seed")
    p.add_argument("--clip_model", default=None, help="CLIPModel folder or open_clip arch")
    p.add_argument(
        "--clip_backend", default="auto", choices=["auto", "tiny", "transformers", "open_clip"]
    )
    p.add_argument("--clip_checkpoint", default=None, help="open_clip checkpoint file")
    p.add_argument("--output_dir", default="outputs/eval/clipscore")
    add_model_args(p)
    args = p.parse_args(argv)
    args.prompts = prompts_arg(args.prompts)
    return args


def read_captions(path: str | Path, folder: Path) -> list[tuple[Path, str]]:
    """(image path, caption) pairs from a captions CSV or a sample_grid manifest."""
    path = Path(path)
    if not path.is_file():
        raise EraseError(f"captions file {str(path)!r} does not exist")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError:
            raise EraseError(f"{str(path)!r} is not valid JSON") from None
        entries = data.get("images", data) if isinstance(data, dict) else data
        pairs = [(folder / e["file"], e["prompt"]) for e in entries if e.get("prompt") is not None]
    else:
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                cols = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise EraseError(f"cannot read captions CSV {str(path)!r}: {exc}") from None
        img_col = next((c for c in IMAGE_COLUMNS if c in cols), None)
        if "prompt" not in cols or img_col is None:
            raise EraseError(
                f"{str(path)!r} needs a 'prompt' column and an image column "
                f"({'/'.join(IMAGE_COLUMNS)}); it has: {', '.join(cols) or 'none'}"
            )
        pairs = [(folder / r[img_col], r["prompt"]) for r in rows]
    if not pairs:
        raise EraseError(f"{str(path)!r} pairs no image with a caption")
    return pairs


def _generation_items(args) -> list[dict]:
    from erase.data.prompts_csv import load_prompt_csv, load_prompts

    if args.prompts is None:
        from erase.embedded.styles import DIGIT_WORDS, STYLES, digit_prompt, style_prompt

        texts = [digit_prompt(w) for w in DIGIT_WORDS]
        texts += [style_prompt(w, s) for s in STYLES[1:] for w in DIGIT_WORDS]
        records = load_prompts(texts)
    elif isinstance(args.prompts, str) and Path(args.prompts).suffix.lower() == ".csv":
        records = load_prompt_csv(args.prompts, limit=args.limit)
    else:
        records = load_prompts(args.prompts)
    if args.limit:
        records = records[: args.limit]
    from erase.generators import prompt_items

    return prompt_items(records, args.seeds)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    validate_args(args)  # every number and path flag, before any work
    from erase.generators import check_positive
    from erase.images import load_images
    from erase.metrics.clipscore import clip_scores, load_clip_backend
    from erase.report import markdown_kv_table, write_eval_result

    check_positive("--limit", args.limit)
    check_positive("--batch_size", args.batch_size)
    out = Path(args.output_dir)
    if args.images is not None and args.captions is None:
        raise EraseError("--images needs --captions (CSV with image and prompt columns)")
    # load CLIP first: a wrong path fails before any image is generated
    clip = load_clip_backend(
        args.clip_model,
        backend=args.clip_backend,
        checkpoint=args.clip_checkpoint,
        device=args.device,
    )
    if args.images is not None:
        if args.model is not None:
            raise EraseError("give --images or --model, not both")
        pairs = read_captions(args.captions, Path(args.images))
        if args.limit:
            pairs = pairs[: args.limit]
        paths, captions = [p for p, _ in pairs], [c for _, c in pairs]
        items = [{"prompt": c, "filename": p.name} for p, c in pairs]
        model_name = None
    else:
        from erase.generators import generate_to_folder, load_generator

        items = _generation_items(args)
        gen = load_generator(args.model, args.base, device=args.device)
        model_name = gen.name
        paths = generate_to_folder(
            gen,
            items,
            out / "images",
            batch_size=args.batch_size,
            num_inference_steps=args.num_inference_steps,
            default_guidance=args.guidance_scale,
        )
        captions = [it["prompt"] for it in items]
    images = load_images(paths)
    scores = clip_scores(clip, images, captions, batch_size=max(args.batch_size, 32))
    summary = {
        "clip_score": scores.mean().item(),
        "clip_score_std": scores.std().item() if len(scores) > 1 else 0.0,
        "n_images": len(scores),
        "clip_model": clip.name,
    }
    distinct = len(set(captions)) > 1
    if distinct:  # a floor: every image with the caption of the next image that differs
        shifted = []
        for i, c in enumerate(captions):
            j = next(
                (
                    k % len(captions)
                    for k in range(i + 1, i + len(captions))
                    if captions[k % len(captions)] != c
                ),
                i,
            )
            shifted.append(captions[j])
        summary["mismatched_clip_score"] = clip_scores(clip, images, shifted).mean().item()
    per_image = [
        {**{k: v for k, v in it.items()}, "clip_score": s} for it, s in zip(items, scores.tolist())
    ]
    data = {
        "model": model_name,
        "summary": summary,
        "conventions": {"CLIPScore": f"100·max(cos, 0), {clip.name}"},
        "settings": {
            "images": args.images,
            "captions": args.captions,
            "prompts": args.prompts,
            "limit": args.limit,
        },
        "per_image": per_image,
    }
    md = [
        "# CLIPScore",
        "",
        f"Model: {model_name or 'images in ' + str(args.images)}. CLIP: {clip.name}. "
        "CLIPScore = 100 · max(cos(image, text), 0), mean over images.",
        "",
    ]
    md += markdown_kv_table({k: v for k, v in summary.items() if k != "clip_model"})
    json_path, _ = write_eval_result(out, "clipscore", data, "\n".join(md))
    print(f"CLIPScore {summary['clip_score']:.2f} over {len(scores)} images -> {json_path}")
    return data


if __name__ == "__main__":
    main()
