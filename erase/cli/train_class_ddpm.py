"""Pretrain a class-conditional DDPM (UNet2DModel with a null class for guidance) to erase from.

    accelerate launch scripts/train_class_ddpm.py --train_data cifar-10-batches-py --output_dir OUT

The defaults are the DDPM CIFAR-10 setting (35.7 M-parameter UNet, 32×32, batch 128, lr 2e-4,
5k warm-up steps, EMA 0.9999, random flips) at 100k steps: a GPU job. Expected time, estimated
from the network's cost and not yet measured: ~2-4 h on one A100 or H100 with
--mixed_precision bf16 (about twice that in fp32); hundreds of hours on a CPU. For a smoke run:
--model_size tiny --max_train_steps 20. Writes OUT/unet, OUT/scheduler (DDPMScheduler),
OUT/world.json (classes, null class, guidance), OUT/samples.png (one row per class),
OUT/train_config.json; OUT/checkpoint-N every --checkpointing_steps for --resume_from_checkpoint.
--exclude_class K [K ...] trains the same recipe without those classes' images: the
exact-unlearning reference for a model erasing them (erase_class --reference).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

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
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in output_dir")
    p.add_argument("--model_size", default="cifar", choices=["tiny", "small", "cifar"])
    p.add_argument("--resolution", type=int, default=None, help="default: the data's own size")
    p.add_argument("--max_train_steps", type=int, default=100_000)
    p.add_argument("--train_batch_size", type=int, default=128, help="per process")
    p.add_argument("--learning_rate", type=float, default=2e-4)
    p.add_argument("--lr_warmup_steps", type=int, default=5000)
    p.add_argument("--adam_weight_decay", type=float, default=0.0)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--cond_drop", type=float, default=0.1, help="share of labels → null class")
    p.add_argument(
        "--random_flip",
        default="auto",
        choices=["auto", "on", "off"],
        help="horizontal flips; auto: off for digits (a mirrored 3 is no 3), on otherwise",
    )
    p.add_argument("--beta_schedule", default="linear", choices=["linear", "squaredcos_cap_v2"])
    p.add_argument("--ema_decay", type=float, default=0.9999, help="0 disables the EMA")
    p.add_argument(
        "--mixed_precision",
        default=None,
        choices=["no", "fp16", "bf16"],
        help="default: accelerate's configuration (no, unless `accelerate config` says)",
    )
    p.add_argument(
        "--exclude_class",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="train without these classes' images: the exact-unlearning reference "
        "(--reference; default: none, every class)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpointing_steps", type=int, default=5000, help="0: never")
    p.add_argument("--checkpoints_total_limit", type=int, default=2)
    p.add_argument(
        "--resume_from_checkpoint",
        default=None,
        help="'latest' or checkpoint-N (default: start a new run)",
    )
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--guidance_scale", type=float, default=2.0, help="for the grid and world.json")
    p.add_argument("--num_inference_steps", type=int, default=50, help="DDIM steps (grid)")
    p.add_argument("--grid_samples_per_class", type=int, default=8)
    return p


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("max_train_steps", "train_batch_size", "grid_samples_per_class", "log_every"):
        if getattr(args, name) < 1:
            raise EraseError(f"--{name} must be >= 1")
    if not 0.0 <= args.cond_drop < 1.0:
        raise EraseError("--cond_drop must be in [0, 1)")
    if not 0.0 <= args.ema_decay < 1.0:
        raise EraseError("--ema_decay must be in [0, 1)")
    return args


def _sample_grid(unet, scheduler, class_names, args, null_class):
    import torch

    from erase.grids import image_grid
    from erase.images import tensor_to_pil
    from erase.sampling import sample_class_conditional

    n = args.grid_samples_per_class
    labels = torch.arange(len(class_names)).repeat_interleave(n)
    images = sample_class_conditional(
        unet,
        scheduler,
        labels,
        guidance_scale=args.guidance_scale,
        null_class=null_class,
        num_inference_steps=args.num_inference_steps,
        seed=1000,
    )
    pil = tensor_to_pil(images)
    rows = [pil[i * n : (i + 1) * n] for i in range(len(class_names))]
    return image_grid(rows, row_labels=class_names, title=f"guidance {args.guidance_scale}")


@dataclass
class _Data:
    """The training images fitted to the model, and what world.json says about them."""

    data: object  # erase.data.class_data.ClassData
    source: str
    split_note: str
    resolution: int
    channels: int
    flip: bool
    excluded: list[int]


@dataclass
class _Model:
    """The network being trained, its EMA, optimizer and schedule (what a checkpoint holds)."""

    unet: object  # as accelerate prepared it
    plain: object  # unwrapped: the weights saved and averaged
    scheduler: object
    ema: object
    opt: object
    lr_sched: object

    def checkpoint_tensors(self) -> dict:
        tensors = {f"unet.{k}": v for k, v in self.plain.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
        return tensors


def run(args):
    from erase.validate import validate_args

    validate_args(args)  # NaN/inf and path flags, before any work
    from accelerate import Accelerator

    from erase.runs import prepare_output_dir

    out = prepare_output_dir(args.output_dir, args.overwrite, args.resume_from_checkpoint)
    d = _training_data(args)
    acc = Accelerator(mixed_precision=args.mixed_precision)
    model = _build_model(args, acc, d)
    step, losses = _resume(args, out, acc, model)
    t0 = time.perf_counter()
    step = _train(args, out, acc, model, d, step, losses)
    seconds = time.perf_counter() - t0
    acc.wait_for_everyone()
    if not acc.is_main_process:
        acc.end_training()
        return None
    _save_outputs(args, out, acc, model, d, step, losses, seconds)
    acc.end_training()
    return Path(out)


def _training_data(args) -> _Data:
    """The train split (minus ``--exclude_class``), resized to the model; flips decided."""
    from erase.class_ddpm import check_resolution, without_classes
    from erase.data.class_data import ClassData, fit_to_model
    from erase.data.splits import load_class_splits
    from erase.judge_training import default_flip

    train, _, split_note = load_class_splits(args.train_data)
    resolution = args.resolution or int(train.images.shape[-1])
    check_resolution(resolution, args.model_size)
    channels = int(train.images.shape[1])
    excluded = sorted(set(args.exclude_class or ()))
    bad = [k for k in excluded if not 0 <= k < train.num_classes]
    if bad or len(excluded) >= train.num_classes:
        raise EraseError(
            f"--exclude_class {' '.join(map(str, excluded))}: give class indices in "
            f"0..{train.num_classes - 1}, leaving at least one class"
        )
    images, labels = without_classes(train.images, train.labels, excluded)
    kept = ClassData(images, labels, train.class_names, train.source)
    data = fit_to_model(kept, channels, resolution)
    flip = default_flip(train) if args.random_flip == "auto" else args.random_flip == "on"
    return _Data(data, train.source, split_note, resolution, channels, flip, excluded)


def _build_model(args, acc, d: _Data) -> _Model:
    """UNet (seeded), DDPM scheduler, EMA, AdamW with linear warm-up, prepared by accelerate."""
    import torch

    from erase.class_ddpm import EMA, make_class_scheduler, make_class_unet, warmup_constant

    n_classes = d.data.num_classes
    torch.manual_seed(args.seed)
    unet = make_class_unet(args.model_size, n_classes, d.channels, d.resolution)
    scheduler = make_class_scheduler(args.beta_schedule)
    ema = EMA(unet, args.ema_decay) if args.ema_decay > 0 else None
    opt = torch.optim.AdamW(
        unet.parameters(), lr=args.learning_rate, weight_decay=args.adam_weight_decay
    )
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_constant(args.lr_warmup_steps))
    unet, opt = acc.prepare(unet, opt)
    return _Model(unet, acc.unwrap_model(unet), scheduler, ema, opt, lr_sched)


def _resume(args, out, acc, model: _Model) -> tuple[int, list]:
    """``(step, losses)`` from ``--resume_from_checkpoint`` (weights, EMA, optimizer restored)."""
    from erase.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt = resolve_checkpoint(args.resume_from_checkpoint, out)
    if ckpt is None:
        return 0, []
    state, _ = load_checkpoint(
        ckpt, params=model.checkpoint_tensors(), optimizer=model.opt, lr_scheduler=model.lr_sched
    )
    step = int(state["step"])
    acc.print(f"resumed from {ckpt.name} at step {step}")
    return step, list(state.get("losses", []))


def _train(args, out, acc, model: _Model, d: _Data, step: int, losses: list) -> int:
    """:func:`erase.class_ddpm.train_denoiser` with per-step generators, logging, checkpoints."""
    import torch
    from tqdm.auto import tqdm

    from erase.class_ddpm import step_generator, train_denoiser, training_batch

    null_class = d.data.num_classes
    bar = tqdm(
        initial=step, total=args.max_train_steps, desc="ddpm", disable=not acc.is_local_main_process
    )
    window = []

    def next_batch(step):
        gen = step_generator(args.seed, step, acc.process_index)
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))  # dropout
        x, y = training_batch(
            d.data.images, d.data.labels, args.train_batch_size, null_class, args.cond_drop,
            d.flip, gen,
        )  # fmt: skip
        return x, y, gen

    def after_step(step: int, loss: float) -> None:
        window.append(loss)
        if step % args.log_every == 0 or step == args.max_train_steps:
            losses.append([step, round(sum(window) / len(window), 5)])
            bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
            window.clear()
        bar.update(1)
        if args.checkpointing_steps and step % args.checkpointing_steps == 0:
            _checkpoint(args, out, acc, model, step, losses)

    model.unet.train()
    step = train_denoiser(
        model.unet, model.scheduler, model.opt, model.lr_sched, next_batch,
        step=step, max_steps=args.max_train_steps, device=acc.device, ema=model.ema,
        ema_model=model.plain, max_grad_norm=args.max_grad_norm, backward=acc.backward,
        clip=acc.clip_grad_norm_, after_step=after_step,
    )  # fmt: skip
    bar.close()
    return step


def _checkpoint(args, out, acc, model: _Model, step: int, losses: list) -> None:
    from erase.checkpoint import save_checkpoint

    if acc.is_main_process:
        save_checkpoint(
            out / f"checkpoint-{step}",
            params=model.checkpoint_tensors(),
            optimizer=model.opt,
            lr_scheduler=model.lr_sched,
            state={"step": step, "losses": losses},
            total_limit=args.checkpoints_total_limit,
        )
    acc.wait_for_everyone()


def _save_outputs(args, out, acc, model: _Model, d: _Data, step, losses, seconds) -> None:
    """The EMA weights as a diffusers UNet, the scheduler, world.json, config, a sample grid."""
    import torch

    from erase.class_ddpm import make_class_unet, num_parameters
    from erase.io import COMPLETE_MARKER, atomic_dir, atomic_write_json, save_image

    n_classes = d.data.num_classes
    final = make_class_unet(args.model_size, n_classes, d.channels, d.resolution)
    final.load_state_dict(model.plain.state_dict())
    if model.ema is not None:
        model.ema.copy_to(final)
    final.eval()
    world = _world(args, d)
    config = {
        **vars(args),
        "resolution": d.resolution,
        "random_flip_used": d.flip,
        "num_parameters": num_parameters(final),
        "steps": step,
        "train_seconds_this_session": round(seconds, 2),
        "num_processes": acc.num_processes,
        "effective_batch_size": args.train_batch_size * acc.num_processes,
        "losses": losses,
        "device": str(acc.device),
        "torch": torch.__version__,
    }
    grid = _sample_grid(final, model.scheduler, d.data.class_names, args, n_classes)
    with atomic_dir(out / "unet") as tmp:
        final.save_pretrained(tmp, safe_serialization=True)
    with atomic_dir(out / "scheduler") as tmp:
        model.scheduler.save_pretrained(tmp)
    atomic_write_json(out / "world.json", world)
    atomic_write_json(out / "train_config.json", config)
    save_image(grid, out / "samples.png")
    (out / COMPLETE_MARKER).write_text("")
    print(
        f"trained {step} steps ({config['num_parameters'] / 1e6:.2f} M parameters, "
        f"last loss {losses[-1][1] if losses else float('nan'):.4f}) -> {out}"
    )


def _world(args, d: _Data) -> dict:
    """What a model user needs: classes, null class, size, guidance, where the data came from."""
    world = {
        "num_classes": d.data.num_classes,
        "null_class": d.data.num_classes,
        "class_names": d.data.class_names,
        "image_size": d.resolution,
        "channels": d.channels,
        "guidance_scale": args.guidance_scale,
        "num_inference_steps": args.num_inference_steps,
        "pixel_range": [-1.0, 1.0],
        "train_data": str(args.train_data),
        "data_source": d.source,
        "split": d.split_note,
    }
    if d.excluded:  # the exact-unlearning reference (erase.reference)
        world["excluded_classes"] = d.excluded
    return world


@cli_main
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
