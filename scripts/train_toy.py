#!/usr/bin/env python
"""Train the embedded digits world: the independent classifier and the class-conditional DDPM.

    python scripts/train_toy.py                       # regenerates erase/assets/ (seed 0)
    python scripts/train_toy.py --output_dir /tmp/toy --max_train_steps 200

Writes ``<output_dir>/digits_classifier.safetensors`` and ``<output_dir>/digits_ddpm/``
(``unet/``, ``scheduler/``, ``world.json`` with the measured sample accuracy, ``samples.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from erase.embedded.classifier import (
    ASSET_NAME as CLASSIFIER_NAME,
)
from erase.embedded.classifier import (
    load_digits_classifier,
    save_digits_classifier,
    train_digits_classifier,
)
from erase.embedded.ddpm import (
    ASSET_NAME as DDPM_NAME,
)
from erase.embedded.ddpm import (
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_TRAIN_STEPS,
    NULL_CLASS,
    digits_grid,
    evaluate_digits_ddpm,
    load_digits_ddpm,
    save_digits_ddpm,
    train_digits_ddpm,
)
from erase.embedded.digits import ASSETS_DIR
from erase.errors import EraseError, cli_main
from erase.io import ensure_writable_dir
from erase.sampling import sample_class_conditional


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--output_dir", type=str, default=str(ASSETS_DIR), help="where the assets go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max_train_steps", type=int, default=DEFAULT_TRAIN_STEPS)
    p.add_argument(
        "--max_train_seconds",
        type=float,
        default=None,
        help="stop earlier after this many seconds (not reproducible; steps are)",
    )
    p.add_argument("--train_batch_size", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--cond_drop", type=float, default=0.1, help="null-label rate for guidance")
    p.add_argument("--ema_decay", type=float, default=0.995)
    p.add_argument("--data_split", choices=["train", "all"], default="train")
    p.add_argument("--eval_samples_per_class", type=int, default=50)
    p.add_argument(
        "--guidance_scale",
        type=float,
        default=DEFAULT_GUIDANCE_SCALE,
        help="the world's default classifier-free guidance (written to world.json)",
    )
    p.add_argument(
        "--eval_guidance_scales",
        type=str,
        default="1.0,1.5,2.0",
        help="comma-separated guidance scales also measured (world.json: guidance_sweep)",
    )
    p.add_argument(
        "--evaluate_only",
        action="store_true",
        help="re-measure the DDPM already in <output_dir>/digits_ddpm and rewrite its world.json",
    )
    p.add_argument(
        "--classifier",
        type=str,
        default=None,
        help="use this classifier .safetensors instead of training one",
    )
    p.add_argument("--skip_ddpm", action="store_true", help="train only the classifier")
    p.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num_threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise EraseError("--max_train_steps must be >= 1")
    return args


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    out = ensure_writable_dir(args.output_dir)

    if args.classifier:
        classifier = load_digits_classifier(args.classifier)
    elif args.evaluate_only:
        classifier = load_digits_classifier(out / CLASSIFIER_NAME)
    else:
        classifier = train_digits_classifier(seed=args.seed, progress=True)
        save_digits_classifier(classifier, out / CLASSIFIER_NAME)
        print(f"classifier test accuracy {classifier.test_accuracy:.4f} -> {out / CLASSIFIER_NAME}")
    if args.skip_ddpm:
        return
    classifier = classifier.to(args.device)

    if args.evaluate_only:
        unet, scheduler, info = load_digits_ddpm(out / DDPM_NAME, device=args.device)
    else:
        unet, scheduler, info = train_digits_ddpm(
            output_dir=None,
            max_seconds=args.max_train_seconds,
            max_steps=args.max_train_steps,
            seed=args.seed,
            batch_size=args.train_batch_size,
            lr=args.learning_rate,
            cond_drop=args.cond_drop,
            ema_decay=args.ema_decay,
            split=args.data_split,
            device=args.device,
        )
        print(f"trained {info['training']['steps']} steps in {info['training']['seconds']} s")
    info["guidance_scale"] = args.guidance_scale
    info["evaluation"] = evaluate_digits_ddpm(
        unet,
        scheduler,
        classifier,
        samples_per_class=args.eval_samples_per_class,
        guidance_scale=args.guidance_scale,
    )
    sweep = {}
    for g in sorted({float(v) for v in args.eval_guidance_scales.split(",") if v.strip()}):
        if g == args.guidance_scale:
            res = info["evaluation"]
        else:
            res = evaluate_digits_ddpm(
                unet,
                scheduler,
                classifier,
                samples_per_class=args.eval_samples_per_class,
                guidance_scale=g,
            )
        sweep[str(g)] = {
            "sample_accuracy": res["sample_accuracy"],
            "per_class_accuracy": res["per_class_accuracy"],
        }
        print(f"guidance {g}: sample accuracy {res['sample_accuracy']:.3f}")
    info["evaluation"]["guidance_sweep"] = sweep
    labels = torch.arange(10).repeat(8)
    grid = digits_grid(
        sample_class_conditional(
            unet,
            scheduler,
            labels,
            guidance_scale=args.guidance_scale,
            null_class=NULL_CLASS,
            seed=1000,
        ),
        rows=8,
    )
    save_digits_ddpm(unet, scheduler, info, out / DDPM_NAME, grid=grid)
    print(
        json.dumps({k: v for k, v in info["evaluation"].items() if k != "guidance_sweep"}, indent=2)
    )
    print(f"saved -> {Path(out) / DDPM_NAME}")


if __name__ == "__main__":
    main()
