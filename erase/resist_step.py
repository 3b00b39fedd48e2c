"""An erasure that resists relearning: the meta step runs the attacker before it judges forgetting.

``meta-resist`` (as Meta-Unlearning, Gao et al. 2024, first order): an attacker fine-tunes the
erased model on the concept's images with AdamW. Each step simulates that attack on the
current weights — K steps of a fresh AdamW (the attacker's optimiser, rate and betas; no
weight decay, as the relearning attack of ``eval/attack.py``) on the ordinary denoising loss
of the forget data — and adds the gradient of the forget loss at the relearned weights θ_K to
``lur``'s retain-after-forget gradient at θ::

    ∇J = ∇J_lur(θ) + w ∇L_f(θ_K),   θ_K = AdamW^K(θ; L_relearn)   (∂θ_K/∂θ taken as I)

so the update makes the concept's erased mapping survive K steps of relearning, while
retention is still judged at θ (after ``lur``'s look-ahead), never at the attacked copy.

Memory over ``lur``: θ saved once (the copy the attack runs on is the model itself, restored
afterwards), AdamW's two moments — what the simulation needs — and one buffer for ∇L_f(θ_K):
four fp32 copies of the trainable weights (≈ 13.8 GB for the whole SD-1.5 UNet, 3.4 GB each).
Cost over ``lur``: K + 1 forward/backward passes a step, or on average (K + 1) / N with
``resist_every`` N (the attack simulated on steps 0, N, 2N, …; ``lur``'s step in between, so a
resumed run stays bit-exact without keeping anything across steps). ``meta-relearn``
(erase.robust_step) is the one-step, preconditioned-step version of this rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .meta_step import MetaConfig, StepContext, _take_grads, accumulate_grad, meta_gradient
from .step_rng import step_generator

# the attacker's rate, as the relearning attack's default (eval/attack.py --relearn_lr)
ATTACK_LR = 1e-4


@dataclass
class ResistConfig:
    steps: int = 3  # K simulated attacker steps a training step
    lr: float = ATTACK_LR  # the simulated attacker's AdamW rate
    weight: float = 1.0  # w: weight of the forget loss at the relearned weights
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"resist steps must be >= 1, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"resist lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)


def simulate_attack(ctx: StepContext, relearn_steps, cfg: ResistConfig) -> list[float]:
    """Run K steps of the attacker (a fresh ``torch.optim.AdamW``, weight decay 0) on the
    model's own weights; returns the relearning losses. ``relearn_steps[k]`` is the loss closure
    of attack step k. The caller restores θ; the attacker's moments go with it."""
    attacker = torch.optim.AdamW(ctx.params, lr=cfg.lr, betas=cfg.betas, weight_decay=0.0)
    losses = []
    for relearn in relearn_steps:
        losses.append(accumulate_grad(ctx, relearn))
        attacker.step()
    return losses


def resist_gradient(
    ctx: StepContext,
    forget,
    retain,
    relearn_steps,
    meta: MetaConfig,
    cfg: ResistConfig,
    monitor=False,
    mask=None,
) -> dict:
    """``lur``'s gradient at θ plus w ∇L_f at the weights K simulated attacker steps away."""
    theta = [p.detach().clone() for p in ctx.params]
    losses = simulate_attack(ctx, relearn_steps, cfg)
    l_fa = accumulate_grad(ctx, forget)
    g_fa = _take_grads(ctx.params)
    with torch.no_grad():
        torch._foreach_copy_([p.data for p in ctx.params], theta)
    del theta
    stats = meta_gradient(ctx, forget, retain, meta, monitor=monitor, mask=mask)
    with torch.no_grad():  # (a saliency mask, if any, gates the sum in the trainer)
        torch._foreach_add_([p.grad for p in ctx.params], g_fa, alpha=cfg.weight)
    stats.update(loss_relearn=losses[0], loss_relearn_last=losses[-1], loss_forget_relearned=l_fa)
    return stats


def resist_rule(trainer, forget, retain, monitor: bool, mask, step: int) -> dict:
    """The trainer's entry: attack step k of training step ``step`` draws the task's denoising
    loss on the forget data (the relearning loss) from its own deterministic generator."""
    meta = trainer.meta
    if meta.retain_weight != trainer.method.retain_weight:
        meta = MetaConfig(**{**meta.to_dict(), "retain_weight": trainer.method.retain_weight})
    if step % meta.resist_every:  # between simulated attacks: lur's own step
        return meta_gradient(trainer.ctx, forget, retain, meta, monitor=monitor, mask=mask)
    cfg = ResistConfig(steps=meta.resist_steps, lr=meta.resist_lr, weight=meta.resist_weight)
    world, rank = trainer.acc.num_processes, trainer.acc.process_index
    n_micro = trainer.cfg.gradient_accumulation_steps

    def attack_step(k):
        closures = [
            trainer.task.saliency_closure(
                step_generator(trainer.cfg.seed, step, m, salt=1000 + k), rank, world
            )
            for m in range(n_micro)
        ]
        return trainer._autocast(lambda fn, m: closures[m](fn, m))

    relearn_steps = [attack_step(k) for k in range(cfg.steps)]
    return resist_gradient(trainer.ctx, forget, retain, relearn_steps, meta, cfg, monitor, mask)
