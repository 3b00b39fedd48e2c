"""Erasure that resists attacks: the meta step simulates the attack before it judges the forget loss.

``meta-relearn`` (relearning look-ahead, as Meta-Unlearning, Gao et al. 2024): an attacker
fine-tunes on the concept's images, so the forget loss is also taken after one simulated
relearning step, θ_a = θ − α_a P(∇L_relearn(θ)), with L_relearn the ordinary denoising loss on
the forget data::

    ∇J = ∇J_lur(θ) + w ∇L_f(θ_a)          (first order: the Hessian of L_relearn is dropped)

Cost over ``lur``: one forward/backward for ∇L_relearn and one for ∇L_f(θ_a), no extra
parameter-sized buffer beyond the one that holds ∇L_f(θ_a).

``meta-adv`` (an adversarial inner step on the prompt embedding, as AdvUnlearn's attack step):
the forget loss of the whole ``lur`` rule is taken at the worst nearby condition,
c' = c + ρ‖c‖ ∇_c L_f / ‖∇_c L_f‖ per sample (one normalised ascent step; the perturbation is
then held fixed, as in adversarial training). Cost over ``lur``: one forward/backward to the
condition. Text-conditional models only (a class label has no embedding to perturb here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .errors import EraseError
from .meta_step import (
    MetaConfig,
    StepContext,
    _apply_lookahead,
    _take_grads,
    accumulate_grad,
    meta_gradient,
)
from .step_rng import step_generator

ROBUST_RULES = ("meta-relearn", "meta-adv")


@dataclass
class RobustConfig:
    # α_a = relearn_scale × the look-ahead's α: one preconditioned step the size of ~10 Adam
    # steps of the attacker (relearning brings a digit back within 10–20 steps).
    relearn_scale: float = 10.0
    adv_radius: float = 0.1  # ρ, relative to each condition's norm
    weight: float = 1.0  # w: weight of the forget loss at the attacked point

    def to_dict(self) -> dict:
        return asdict(self)


def relearn_gradient(
    ctx: StepContext,
    forget,
    retain,
    relearn,
    meta: MetaConfig,
    robust: RobustConfig,
    monitor=False,
    mask=None,
) -> dict:
    """``lur``'s gradient plus w ∇L_f at the simulated relearning point θ_a."""
    l_rl = accumulate_grad(ctx, relearn)
    g_rl = _take_grads(ctx.params)
    attack = MetaConfig(**{**meta.to_dict(), "inner_lr": meta.inner_lr * robust.relearn_scale})
    _apply_lookahead(ctx, attack, g_rl, None, sign=-1.0)
    l_fa = accumulate_grad(ctx, forget)
    g_fa = _take_grads(ctx.params)
    _apply_lookahead(ctx, attack, g_rl, None, sign=1.0)
    del g_rl
    stats = meta_gradient(ctx, forget, retain, meta, monitor=monitor, mask=mask)
    with torch.no_grad():
        torch._foreach_add_([p.grad for p in ctx.params], g_fa, alpha=robust.weight)
    stats.update(loss_relearn=l_rl, loss_forget_relearned=l_fa)
    return stats


def _perturbed(model_fn, delta):
    def fn(x, t, **kw):
        if "encoder_hidden_states" not in kw:
            raise EraseError("lur-adv perturbs the text condition; this model takes none")
        return model_fn(
            x, t, **{**kw, "encoder_hidden_states": kw["encoder_hidden_states"] + delta}
        )

    return fn


class _Probe:
    """Calls the model with a zero perturbation of the condition that autograd can see."""

    def __init__(self, model):
        self.model, self.c, self.d = model, None, None

    def __call__(self, x, t, **kw):
        if kw.get("encoder_hidden_states") is None:
            raise EraseError("lur-adv perturbs the text condition; this model takes none")
        self.c = kw["encoder_hidden_states"].detach()
        self.d = torch.zeros_like(self.c, requires_grad=True)
        return self.model(x, t, **{**kw, "encoder_hidden_states": self.c + self.d})


def adversarial_conditions(ctx: StepContext, forget, radius: float) -> tuple[list, float]:
    """One normalised ascent step on each micro-batch's condition: the perturbations and the
    clean forget loss."""
    deltas, clean = [], 0.0
    for micro in range(ctx.n_micro):
        probe = _Probe(ctx.model)
        loss = forget(probe, micro)
        (g,) = torch.autograd.grad(loss, [probe.d])
        dims = tuple(range(1, g.dim()))
        g_norm = g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * len(dims))
        c_norm = probe.c.flatten(1).norm(dim=1).view(-1, *[1] * len(dims))
        deltas.append((radius * c_norm * g / g_norm).detach())
        clean += float(loss.detach()) / ctx.n_micro
    return deltas, clean


def adversarial_gradient(
    ctx: StepContext,
    forget,
    retain,
    meta: MetaConfig,
    robust: RobustConfig,
    monitor=False,
    mask=None,
) -> dict:
    """``lur``'s gradient with the forget loss taken at the worst nearby condition."""
    deltas, clean = adversarial_conditions(ctx, forget, robust.adv_radius)

    def forget_adv(model_fn, micro):
        return forget(_perturbed(model_fn, deltas[micro]), micro)

    stats = meta_gradient(ctx, forget_adv, retain, meta, monitor=monitor, mask=mask)
    stats["loss_forget_clean"] = clean
    return stats


def robust_rule(trainer, forget, retain, monitor: bool, mask, step: int) -> dict:
    """The trainer's entry: the relearning closure is the task's denoising loss on the forget
    data (the one SalUn's saliency uses), drawn deterministically per step."""
    meta = trainer.meta
    if meta.retain_weight != trainer.method.retain_weight:
        meta = MetaConfig(**{**meta.to_dict(), "retain_weight": trainer.method.retain_weight})
    robust = RobustConfig(
        relearn_scale=meta.relearn_scale, adv_radius=meta.adv_radius, weight=meta.relearn_weight
    )
    if trainer.method.rule == "meta-adv":
        return adversarial_gradient(trainer.ctx, forget, retain, meta, robust, monitor, mask)
    world, rank = trainer.acc.num_processes, trainer.acc.process_index
    closures = [
        trainer.task.saliency_closure(
            step_generator(trainer.cfg.seed, step, m, salt=11), rank, world
        )
        for m in range(trainer.cfg.gradient_accumulation_steps)
    ]
    relearn = trainer._autocast(lambda fn, m: closures[m](fn, m))
    return relearn_gradient(trainer.ctx, forget, retain, relearn, meta, robust, monitor, mask)
