"""Train the embedded text-to-image world: the judge, then the tiny Stable Diffusion pipeline.

    python scripts/train_tiny_sd.py                     # writes erase/assets/tiny_sd{,_judge.safetensors}
    python scripts/train_tiny_sd.py --output_dir out/   # somewhere else
    python scripts/train_tiny_sd.py --exclude_concept thick --output_dir ref/  # a reference

``--exclude_concept`` trains the exact-unlearning reference of a concept erasure (digit words,
styles): the same recipe without those images and their prompts, judged by the committed judge
(``erase_concept --reference auto`` trains and caches it for you).

Fixed seeds make the run repeatable on one machine (CPU kernels may differ across machines).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from erase.embedded.digits import ASSETS_DIR
from erase.embedded.judge import JUDGE_ASSET, load_judge, save_judge, train_judge
from erase.embedded.tiny_sd import ASSET_NAME, excluded_concepts, train_tiny_sd
from erase.errors import EraseError, cli_main
from erase.io import ensure_writable_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--output_dir", type=Path, default=ASSETS_DIR, help="folder for both assets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge_steps", type=int, default=1000)
    p.add_argument("--skip_judge", action="store_true", help="reuse the judge in --output_dir")
    p.add_argument("--skip_pipeline", action="store_true", help="train only the judge")
    p.add_argument("--vae_steps", type=int, default=200)
    p.add_argument("--unet_steps", type=int, default=1000)
    p.add_argument("--train_batch_size", type=int, default=128)
    p.add_argument("--vae_batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-3, help="UNet learning rate")
    p.add_argument("--eval_images_per_class", type=int, default=30)
    p.add_argument(
        "--exclude_concept",
        nargs="+",
        default=(),
        help="train without these digit words / styles (the exact-unlearning reference; "
        "implies the committed judge; default: none)",
    )
    p.add_argument(
        "--num_threads", type=int, default=1, help="torch CPU threads (the assets were made with 1)"
    )
    args = p.parse_args(argv)
    if args.exclude_concept and args.output_dir == ASSETS_DIR:
        p.error("--exclude_concept trains a reference: give it its own --output_dir")
    for name in ("judge_steps", "vae_steps", "unet_steps", "train_batch_size", "vae_batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be positive")
    return args


@cli_main
def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    exclude = excluded_concepts(args.exclude_concept)
    out = ensure_writable_dir(args.output_dir)
    judge_file = out / JUDGE_ASSET
    if exclude:  # a reference is judged by the judge of the original it stands beside
        judge_file = ASSETS_DIR / JUDGE_ASSET
    elif args.skip_judge:
        if not judge_file.exists():
            raise EraseError(f"--skip_judge but {str(judge_file)!r} is missing; drop --skip_judge")
    else:
        t = time.time()
        judge, metrics = train_judge(seed=args.seed, steps=args.judge_steps)
        save_judge(judge, judge_file, metrics)
        logging.info("judge: %s (%.0f s)", metrics, time.time() - t)
    if args.skip_pipeline:
        return
    judge = load_judge(judge_file)  # fail early on a broken judge; evaluation uses this one
    world = train_tiny_sd(
        out / ASSET_NAME,
        seed=args.seed,
        vae_steps=args.vae_steps,
        unet_steps=args.unet_steps,
        batch_size=args.train_batch_size,
        vae_batch_size=args.vae_batch_size,
        unet_lr=args.learning_rate,
        eval_images_per_class=args.eval_images_per_class,
        judge=judge,
        exclude=exclude,
        progress=True,
    )
    print(json.dumps(world, indent=2))


if __name__ == "__main__":
    main()
