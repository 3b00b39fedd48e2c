"""Shared plumbing of the erasure scripts: output folders, accelerator, config records."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from .choices import MODES, ORDERS, PRECONDITIONERS
from .errors import EraseError
from .helpformat import per_method
from .io import COMPLETE_MARKER, ensure_writable_dir
from .stopping import CAP_MULTIPLE, add_stopping_args


def prepare_output_dir(path: str, overwrite: bool, resume: str | None) -> Path:
    """Refuse to mix a new run into a finished one, unless asked to overwrite or resume."""
    out = Path(path)
    finished = (out / COMPLETE_MARKER).exists() or (out / "erase_config.json").exists()
    if out.exists() and not out.is_dir():
        raise EraseError(f"--output_dir {path!r} is a file; choose a folder")
    if finished and not overwrite and not resume:
        raise EraseError(
            f"--output_dir {path!r} holds an earlier run; pass --overwrite to replace it, "
            "--resume_from_checkpoint latest to continue it, or choose another folder"
        )
    ensure_writable_dir(out)
    if finished and overwrite and not resume:
        (out / COMPLETE_MARKER).unlink(missing_ok=True)
    return out


def add_training_args(
    p: argparse.ArgumentParser, *, steps: int, lr: float, batch: int, methods: dict | None = None
) -> None:
    """The training flags, named as in diffusers' training examples; ``methods`` (the job's
    method registry) lets ``--help`` print each method's own defaults."""
    add_run_args(p)
    add_optimizer_args(p.add_argument_group("training"), steps=steps, lr=lr, batch=batch)
    add_stopping_args(p, methods=methods or {})
    m = p.add_argument_group("method")
    add_loss_args(m, methods or {})
    add_meta_args(m, methods or {})
    add_baseline_args(m)


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Where the run goes and how it is checkpointed and logged."""
    g = p.add_argument_group("run")
    g.add_argument("--output_dir", required=True)
    g.add_argument("--overwrite", action="store_true", help="replace a finished run in output_dir")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--checkpointing_steps",
        type=int,
        default=0,
        help="save a resumable checkpoint every N steps (0: never)",
    )
    g.add_argument("--checkpoints_total_limit", type=int, default=2)
    g.add_argument(
        "--resume_from_checkpoint",
        default=None,
        help="'latest' or a checkpoint-N folder in output_dir (default: start a new run)",
    )
    g.add_argument(
        "--report_to",
        default=None,
        choices=["tensorboard"],
        help="also log the step log to tensorboard (default: the step log files only)",
    )
    g.add_argument(
        "--monitor_every",
        type=int,
        default=10,
        help="every N steps also measure the gradient conflict at θ (extra backward)",
    )


def add_optimizer_args(g, *, steps: int, lr: float, batch: int) -> None:
    """The budget and AdamW, as in diffusers' training examples."""
    g.add_argument(
        "--max_train_steps",
        type=int,
        default=None,
        help=f"the step budget (default: {steps}); with the stopping rule on it is the cap "
        f"(default then: {CAP_MULTIPLE} × {steps} = {CAP_MULTIPLE * steps})",
    )
    g.add_argument("--learning_rate", type=float, default=lr)
    g.add_argument(
        "--train_batch_size",
        type=int,
        default=batch,
        help="per device, for the forget and the retain batch each",
    )
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument(
        "--lr_scheduler", default="constant", choices=["constant", "constant_with_warmup"]
    )
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--adam_weight_decay", type=float, default=0.0)
    g.add_argument(
        "--max_grad_norm", type=float, default=None, help="clip the update (default: no clipping)"
    )
    g.add_argument(
        "--mixed_precision",
        default=None,
        choices=["no", "fp16", "bf16"],
        help="default: accelerate's configuration (no, unless `accelerate config` says)",
    )


def add_loss_args(m, methods: dict) -> None:
    """Overrides of the method's losses and λ (default: the method's own)."""
    auto = any(s.forget_loss == "auto" for s in methods.values())
    auto = "; auto: anchor when the concept names an anchor, else esd" if auto else ""
    m.add_argument(
        "--forget_loss",
        default=None,
        choices=["anchor", "esd", "ga", "noise"],
        help="override the method's forget loss (default: the method's: "
        f"{per_method(methods, lambda s: s.forget_loss)}{auto})",
    )
    m.add_argument(
        "--retain_loss",
        default=None,
        choices=["denoise", "preserve"],
        help="override the method's retain loss (default: the method's: "
        f"{per_method(methods, lambda s: s.retain_loss or 'none')})",
    )
    m.add_argument(
        "--retain_weight",
        type=float,
        default=None,
        help=f"λ (default: the method's: {per_method(methods, lambda s: s.retain_weight)})",
    )


def add_meta_args(m, methods: dict) -> None:
    """The look-ahead of lur and its variants."""
    scales = per_method(
        {k: v for k, v in methods.items() if v.rule.startswith("meta")},
        lambda s: f"{s.inner_lr_scale:g} × --learning_rate",
    )
    m.add_argument(
        "--inner_lr",
        type=float,
        default=None,
        help="α, the look-ahead step (in the optimizer's step units with --meta_precondition "
        f"adam; default: {scales or 'the method scale × --learning_rate'})",
    )
    m.add_argument("--inner_steps", type=int, default=1, help="K look-ahead steps")
    m.add_argument(
        "--retain_weight_at_theta",
        type=float,
        default=0.0,
        help="λ₀: lur also judges retention at the current weights, J = L_f(θ) + λ L_r(θ') + "
        "λ₀ L_r(θ) (with --meta_order forget_first only; one more forward/backward a step; 0 = "
        "the paper's objective)",
    )
    m.add_argument("--meta_mode", default="first_order", choices=list(MODES))
    m.add_argument(
        "--meta_order",
        default=None,
        choices=list(ORDERS),
        help="which loss takes the look-ahead step; forget_first is the paper's retain-after-"
        "forget, lur's retain_first was chosen at equal erasure on the tuning concepts (default: "
        "the method's: "
        + per_method(
            {k: v for k, v in methods.items() if v.rule.startswith("meta")},
            lambda s: s.meta_order,
        )
        + ")",
    )
    m.add_argument("--meta_precondition", default="adam", choices=list(PRECONDITIONERS))
    m.add_argument(
        "--relearn_scale",
        type=float,
        default=10.0,
        help="lur-relearn: the simulated relearning step is this × α (≈ that many of the "
        "attacker's Adam steps)",
    )
    m.add_argument(
        "--relearn_weight",
        type=float,
        default=1.0,
        help="lur-relearn: weight w of the forget loss after the simulated relearning step",
    )
    m.add_argument(
        "--adv_radius",
        type=float,
        default=0.1,
        help="lur-adv: radius of the worst nearby prompt embedding, relative to its norm",
    )
    add_resist_args(m, {k: v for k, v in methods.items() if v.rule == "meta-resist"})


def add_resist_args(m, methods: dict) -> None:
    """lur-resist's simulated attack: how long, how often, how hard it pulls."""
    m.add_argument(
        "--resist_steps",
        type=int,
        default=None,
        help="lur-resist: K steps of the simulated attacker (AdamW on the concept's denoising "
        "loss) before the forget loss is judged; each costs one forward/backward (default: "
        "the method's: " + per_method(methods, lambda s: s.resist_steps) + ")",
    )
    m.add_argument(
        "--resist_every",
        type=int,
        default=None,
        help="lur-resist: simulate the attack on every N-th step only, lur's step in between: "
        "the step's cost falls from K + 3 to 3 + (K + 1) / N forward/backward passes (default: "
        "the method's: " + per_method(methods, lambda s: s.resist_every) + ")",
    )
    m.add_argument(
        "--resist_lr",
        type=float,
        default=1e-4,
        help="lur-resist: the simulated attacker's AdamW rate (the relearning attack's default)",
    )
    m.add_argument(
        "--resist_weight",
        type=float,
        default=None,
        help="lur-resist: weight w of the forget loss at the relearned weights (default: the "
        "method's: " + per_method(methods, lambda s: s.resist_weight) + ")",
    )


def add_baseline_args(m) -> None:
    """The baselines' own knobs."""
    m.add_argument(
        "--saliency_sparsity",
        type=float,
        default=0.5,
        help="SalUn: share of weights frozen by the saliency mask",
    )
    m.add_argument("--esd_eta", type=float, default=1.0, help="negative guidance strength η")
    m.add_argument(
        "--ga_bound",
        type=float,
        default=1.0,
        help="gradient ascent stops once the forget denoising MSE exceeds this",
    )


def make_accelerator(args):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    kwargs = {}
    if args.mixed_precision:
        kwargs["mixed_precision"] = args.mixed_precision
    return Accelerator(
        log_with=args.report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")
        ),
        **kwargs,
    )


def environment_record(accelerator) -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(accelerator.device),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def configs_from_args(args, method):
    """(MetaConfig, TrainConfig) from the shared flags; α defaults to the method's
    ``inner_lr_scale`` × the learning rate."""
    from .meta_step import MetaConfig
    from .trainer import TrainConfig

    scale = method.inner_lr_scale
    inner_lr = args.inner_lr if args.inner_lr is not None else scale * args.learning_rate
    meta = MetaConfig(
        mode=args.meta_mode,
        inner_lr=inner_lr,
        inner_steps=args.inner_steps,
        retain_weight_at_theta=getattr(args, "retain_weight_at_theta", 0.0),
        retain_weight=method.retain_weight,
        order=method.meta_order,
        precondition=args.meta_precondition,
        relearn_scale=getattr(args, "relearn_scale", 10.0),
        relearn_weight=getattr(args, "relearn_weight", 1.0),
        adv_radius=getattr(args, "adv_radius", 0.1),
        resist_steps=method.resist_steps,
        resist_every=method.resist_every,
        resist_lr=getattr(args, "resist_lr", 1e-4),
        resist_weight=method.resist_weight,
    )
    train = TrainConfig(
        max_train_steps=args.max_train_steps,
        learning_rate=args.learning_rate,
        train_batch_size=args.train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        adam_weight_decay=args.adam_weight_decay,
        lr_scheduler=args.lr_scheduler,
        lr_warmup_steps=args.lr_warmup_steps,
        max_grad_norm=args.max_grad_norm,
        checkpointing_steps=args.checkpointing_steps,
        checkpoints_total_limit=args.checkpoints_total_limit,
        resume_from_checkpoint=args.resume_from_checkpoint,
        seed=args.seed,
        monitor_every=args.monitor_every,
        saliency_sparsity=args.saliency_sparsity,
        validation_steps=getattr(args, "validation_steps", 0),
    )
    return meta, train
