"""Relearning: fine-tune the erased model on n images of the concept with its ordinary loss.

An erasure that only hides the concept comes back within a few tens of steps (DESIGN §11). The
fine-tuning runs through the project's own trainer (same optimizer, same deterministic batches,
the plain denoising loss as a one-loss "method"), so relearning a run costs what erasing it did.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..losses import noisy_batch, retain_loss

RELEARN_DEFAULTS = dict(lr=1e-4, batch=32, n_images=32, steps=(5, 10, 20))
CURVE_STEPS = (5, 10, 20, 50)  # benign fine-tuning and LoRA relearning (step 0 is always judged)
RELEARN_PARAMS = ("full", "lora")
LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # erase_concept's --train_params lora


def add_lora(model: torch.nn.Module, rank: int) -> None:
    """Rank-``rank`` LoRA on the attention projections, as a user fine-tuning cheaply would.
    peft's injection works on any UNet (the class DDPM's ``UNet2DModel`` has no ``add_adapter``);
    B starts at zero, so the model is unchanged until the first step."""
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS
    )
    inject_adapter_in_model(cfg, model)


class RelearnTask:
    """Draws batches of the concept's images (``x0`` with conditions ``cond``) for the trainer."""

    def __init__(self, x0, cond, predict, scheduler, batch_size: int, device):
        self.x0, self.cond, self.predict = x0, cond, predict
        self.scheduler, self.batch_size, self.device = scheduler, batch_size, device

    def closures(self, generator: torch.Generator, rank: int = 0, world: int = 1):
        n = self.batch_size * world
        idx = torch.randint(len(self.x0), (n,), generator=generator)
        sl = slice(rank * self.batch_size, (rank + 1) * self.batch_size)
        batch = noisy_batch(
            self.scheduler, self.x0[idx].to(self.device), self.cond[idx].to(self.device), generator
        ).take(sl)
        return retain_loss("denoise", self.predict, batch), None


def relearn_curve(
    model: torch.nn.Module,
    task: RelearnTask,
    steps: list[int],
    evaluate: Callable[[int], list[bool]],
    output_dir,
    lr: float = RELEARN_DEFAULTS["lr"],
    seed: int = 0,
    params: str = "full",
    lora_rank: int = 4,
) -> list[dict]:
    """Fine-tune ``model`` in place (all weights, or LoRA adapters added to it with
    ``params="lora"``); ``evaluate(s)`` judges its samples at 0 and after each s.

    Returns ``[{"steps": s, "share": ..., "seen": [...]}, ...]``.
    """
    from accelerate import Accelerator

    from ..meta_step import MetaConfig
    from ..methods import MethodSpec
    from ..params import select_trainable
    from ..trainer import EraseTrainer, TrainConfig

    device = next(model.parameters()).device
    acc = Accelerator(cpu=device.type == "cpu")
    if params == "lora":
        add_lora(model, lora_rank)
        model.to(device)
    named = select_trainable(model, params)
    method = MethodSpec("relearn", "denoise", None, "joint", retain_weight=0.0)
    cfg = TrainConfig(
        max_train_steps=max(steps),
        learning_rate=lr,
        train_batch_size=task.batch_size,
        seed=seed,
        monitor_every=0,
    )
    trainer = EraseTrainer(acc, model, named, task, method, MetaConfig(), cfg, output_dir)

    def point(s):
        model.eval()
        seen = evaluate(s)
        model.train()
        return {"steps": s, "share": sum(seen) / len(seen), "seen": seen}

    curve = [point(0)]
    model.train()
    for step in range(max(steps)):
        stats = trainer.train_step(step)
        if step + 1 in steps:
            curve.append({**point(step + 1), "loss": stats.get("loss_forget")})
    model.eval().requires_grad_(False)
    return curve


def curve_steps(asked: list[int] | None, attack: str, params: str) -> list[int]:
    """The measured points after step 0: the user's, else 5 10 20 50 for the curve attacks
    added in issue 27 (benign, LoRA relearning) and relearn's original 5 10 20, which the
    committed robustness tables were made with."""
    if asked:
        return sorted(set(asked))
    full_relearn = attack == "relearn" and params == "full"
    return list(RELEARN_DEFAULTS["steps"] if full_relearn else CURVE_STEPS)


def curve_settings(kw: dict) -> dict:
    """The curve attack's settings for attack.json: its knobs, not its tensors."""
    return {k: v for k, v in kw.items() if not torch.is_tensor(v) and v is not None}
