"""Train the classifier that judges class erasure: a ResNet-18 adapted to 32×32, from scratch.

    python scripts/train_judge.py --train_data cifar-10-batches-py --output_dir JUDGE

Trained on the data's training split only and scored on its held-out test split (CIFAR-10's
test_batch; the digits' fixed split; an image folder's test/ subfolder or a seeded split).
Writes JUDGE/model.safetensors, JUDGE/judge_config.json (architecture, classes, image size,
channels, normalization) and JUDGE/metrics.json (test_accuracy), all at once. Pass the folder to
erase_class.py --judge. On CIFAR-10 the defaults (30 epochs) are a GPU job of a few minutes.
"""

from __future__ import annotations

import argparse
import platform

from erase.errors import EraseError, cli_main
from erase.helpformat import HelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; ``--help`` prints each with its effective default."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument(
        "--train_data",
        required=True,
        help="'digits', a CIFAR-10 python folder, or an image folder (one subfolder per class)",
    )
    p.add_argument("--output_dir", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace a judge in output_dir")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=0.1, help="one-cycle peak (SGD)")
    p.add_argument("--weight_decay", type=float, default=5e-4)
    p.add_argument("--label_smoothing", type=float, default=0.1)
    p.add_argument("--crop_pad", type=int, default=4, help="random-crop shift in pixels (0: off)")
    p.add_argument(
        "--random_flip",
        default="auto",
        choices=["auto", "on", "off"],
        help="horizontal flips; auto: off when the classes are the ten digits, on otherwise",
    )
    p.add_argument("--image_size", type=int, default=32, help="the judge's input size")
    p.add_argument("--channels", type=int, default=None, help="default: the data's (1 or 3)")
    p.add_argument(
        "--test_fraction",
        type=float,
        default=0.2,
        help="held-out share for an image folder without a test/ subfolder",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument(
        "--num_threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    return p


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            raise EraseError(f"--{name} must be >= 1")
    if args.channels not in (None, 1, 3):
        raise EraseError("--channels must be 1 or 3")
    if args.image_size < 8:
        raise EraseError("--image_size must be at least 8 (ResNet-18 halves it three times)")
    return args


def run(args):
    from pathlib import Path

    from erase.validate import validate_args

    validate_args(args)  # NaN/inf and path flags, before any work
    import torch

    from erase.data.splits import load_class_splits
    from erase.io import atomic_dir, atomic_write_json
    from erase.judge import CONFIG_NAME, save_judge
    from erase.judge_training import accuracy, default_flip, train_judge

    out = Path(args.output_dir)
    if (out / CONFIG_NAME).exists() and not args.overwrite:
        raise EraseError(
            f"--output_dir {args.output_dir!r} holds a judge; pass --overwrite or choose another"
        )
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    train, test, split_note = load_class_splits(args.train_data, args.test_fraction, args.seed)
    flip = default_flip(train) if args.random_flip == "auto" else args.random_flip == "on"
    judge, info = train_judge(
        train,
        image_size=args.image_size,
        channels=args.channels or int(train.images.shape[1]),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
        crop_pad=args.crop_pad,
        flip=flip,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        device=device,
    )
    judge.config.update(train_data=str(args.train_data), data_source=train.source)
    test_acc, per_class = accuracy(judge, test)
    metrics = {
        "test_accuracy": test_acc,
        "per_class_test_accuracy": dict(zip(train.class_names, per_class)),
        "n_test": len(test.labels),
        "test_split": split_note,
        "training": info,
        "device": device,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    with atomic_dir(out) as tmp:
        save_judge(judge, tmp)
        atomic_write_json(tmp / "metrics.json", metrics)
    print(
        f"judge test accuracy {test_acc:.4f} on {len(test.labels)} held-out images "
        f"({info['epochs']} epochs, {info['train_seconds']:.0f} s on {device}) -> {out}"
    )
    return out


@cli_main
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
