#!/usr/bin/env python
"""Fréchet distance between a real and a generated image set.

    python eval/fid.py --real REAL_DIR --fake FAKE_DIR                  # 2048-d Inception FID
    python eval/fid.py --model PIPE --prompts coco_30k.csv --limit 1000 --real COCO_DIR
    python eval/fid.py --model DDPM_RUN --classes 0 1 2 3 4 5 6 8 9     # digits-FID

Features: ``inception`` (the standard 2048-d pool3; its weights must be on disk, see
erase.metrics.fid), ``digits`` (the independent digits classifier, 8×8 grey) or ``judge``
(the tiny SD world's judge, 16×16 grey). ``auto`` picks digits for class-conditional DDPMs,
judge for the embedded tiny SD and inception otherwise. With no --fake/--model, samples the
embedded digits DDPM (offline) and compares with the real digits of the same classes.
Writes ``OUT/fid.json`` and ``OUT/fid.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.errors import EraseError, cli_main  # noqa: E402
from erase.validate import prompts_arg, validate_args  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    from erase.generators import add_model_args

    p.add_argument("--real", default=None, help="folder of real images (default: real digits)")
    p.add_argument("--fake", default=None, help="folder of generated images")
    p.add_argument(
        "--prompts",
        nargs="+",
        default=None,
        help="prompts to generate from (pipelines): a captions CSV, a text file, or prompts",
    )
    p.add_argument("--limit", type=int, default=None)
    p.add_argument(
        "--classes", type=int, nargs="+", default=None, help="DDPM classes (default all)"
    )
    p.add_argument("--samples_per_class", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature", default="auto", choices=["auto", "inception", "digits", "judge"])
    p.add_argument("--inception_weights", default=None, help="torch-fidelity Inception weights")
    p.add_argument("--output_dir", default="outputs/eval/fid")
    add_model_args(p, classes=True)
    args = p.parse_args(argv)
    args.prompts = prompts_arg(args.prompts)
    return args


def _folder_tensor(folder, size: int | None = None):
    from erase.images import list_images, load_images, pil_to_tensor

    images = load_images(list_images(folder))
    if len(images) < 2:
        raise EraseError(f"FID needs at least 2 images; {str(folder)!r} holds {len(images)}")
    target = (size, size) if size else images[0].size
    images = [im if im.size == target else im.resize(target) for im in images]
    return pil_to_tensor(images)


def _extractor(kind: str, weights):
    if kind == "inception":
        from erase.metrics.fid import inception_feature_extractor

        return inception_feature_extractor(weights), "Inception-v3 pool3 (2048-d)", 299
    if kind == "digits":
        import torch.nn.functional as F

        from erase.embedded.classifier import load_digits_classifier

        clf = load_digits_classifier()

        def feats(x):
            x = x.mean(1, keepdim=True) if x.shape[1] != 1 else x
            if x.shape[-1] != 8:
                x = F.interpolate(x, size=(8, 8), mode="bilinear", antialias=True)
            return clf.features(x)

        from erase.metrics.fid import FeatureExtractor

        return FeatureExtractor(feats, clf.feature_dim), "digits classifier features (64-d)", None
    from erase.embedded.judge import FEATURE_DIM, load_judge
    from erase.metrics.fid import FeatureExtractor

    judge = load_judge()
    return FeatureExtractor(judge.features, FEATURE_DIM), "tiny SD judge features (128-d)", None


@cli_main
def main(argv=None):
    args = parse_args(argv)
    validate_args(args)  # every number and path flag, before any work
    from erase.generators import check_positive
    from erase.metrics.fid import fid_from_images
    from erase.report import markdown_kv_table, write_eval_result

    check_positive("--samples_per_class", args.samples_per_class)
    check_positive("--limit", args.limit)
    out = Path(args.output_dir)
    settings: dict = {"real": args.real, "fake": args.fake}
    model_name = None
    kind = args.feature
    if args.fake is not None:
        if args.model is not None:
            raise EraseError("give --fake or --model, not both")
        if args.real is None:
            raise EraseError("--fake needs --real (a folder of reference images)")
        kind = "inception" if kind == "auto" else kind
        extractor, feat_name, size = _extractor(kind, args.inception_weights)
        real = _folder_tensor(args.real, size)
        fake = _folder_tensor(args.fake, size)
    else:
        from erase.generators import load_generator

        gen = load_generator(
            args.model, args.base, classes=args.prompts is None, device=args.device
        )
        model_name = gen.name
        if gen.kind == "ddpm":
            import torch

            from erase.embedded.digits import real_digits_of

            classes = args.classes if args.classes is not None else list(range(10))
            labels = torch.tensor(classes).repeat_interleave(args.samples_per_class)
            fake = gen.generate_classes(
                labels.tolist(),
                seed=args.seed,
                guidance_scale=args.guidance_scale,
                num_inference_steps=args.num_inference_steps,
            )
            kind = "digits" if kind == "auto" else kind
            extractor, feat_name, size = _extractor(kind, args.inception_weights)
            if args.real is not None:
                real = _folder_tensor(args.real, size)
            else:
                real = real_digits_of(classes)
            settings.update(classes=classes, samples_per_class=args.samples_per_class)
        else:
            from erase.data.prompts_csv import load_prompt_csv, load_prompts
            from erase.generators import generate_to_folder, prompt_items
            from erase.images import load_images, pil_to_tensor

            embedded = args.model is None
            if args.real is None and not embedded:
                raise EraseError(
                    "a text-to-image --model needs --real (a folder of reference images)"
                )
            if args.prompts is None:
                from erase.embedded.styles import DIGIT_WORDS, digit_prompt

                records = load_prompts([digit_prompt(w) for w in DIGIT_WORDS])
                seeds = range(args.seed, args.seed + args.samples_per_class)
            else:
                records = (
                    load_prompt_csv(args.prompts)
                    if isinstance(args.prompts, str) and Path(args.prompts).suffix.lower() == ".csv"
                    else load_prompts(args.prompts)
                )
                seeds = [args.seed]
            records = records[: args.limit] if args.limit else records
            items = prompt_items(records, seeds)
            kind = ("judge" if embedded else "inception") if kind == "auto" else kind
            extractor, feat_name, size = _extractor(kind, args.inception_weights)
            if args.real is not None:
                real = _folder_tensor(args.real, size)
            else:
                from erase.embedded.digits import load_digits_images
                from erase.embedded.styles import render

                real = render(load_digits_images()[0], "plain")
            paths = generate_to_folder(
                gen,
                items,
                out / "images",
                batch_size=args.batch_size,
                num_inference_steps=args.num_inference_steps,
                default_guidance=args.guidance_scale,
            )
            images = load_images(paths)
            if size:
                images = [im.resize((size, size)) for im in images]
            fake = pil_to_tensor(images)
            settings.update(prompts=args.prompts or "embedded digit prompts", limit=args.limit)
    fid = fid_from_images(real, fake, extractor)
    summary = {
        "fid": fid,
        "feature_space": feat_name,
        "n_real": len(real),
        "n_fake": len(fake),
    }
    data = {
        "model": model_name,
        "summary": summary,
        "conventions": {"FID": feat_name},
        "settings": settings,
    }
    md = [
        "# FID",
        "",
        f"Model: {model_name or 'images in ' + str(args.fake)}. Features: {feat_name}. "
        "Compare only numbers computed with equal set sizes and the same features.",
        "",
    ]
    md += markdown_kv_table({k: v for k, v in summary.items() if k != "feature_space"})
    json_path, _ = write_eval_result(out, "fid", data, "\n".join(md))
    print(f"FID {fid:.3f} ({feat_name}; {len(real)} real, {len(fake)} generated) -> {json_path}")
    return data


if __name__ == "__main__":
    main()
