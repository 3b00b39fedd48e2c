"""The meta step of Learning to Unlearn while Retaining and the gradient rules it is compared
with.

Every rule fills ``p.grad`` of the trainable parameters and returns a dict of scalars for the
step log; the optimizer step is the caller's. Losses are closures ``loss(model_fn, micro)``
where ``model_fn`` is called like the module itself (it *is* the module in first-order mode, a
``torch.func.functional_call`` stand-in at the look-ahead weights in second-order mode) and
``micro`` indexes the micro-batch for gradient accumulation.

The meta step (Patel & Qiu, 2025), with inner loss ``L_in`` and outer loss ``L_out``: the forget
and the retain loss in the paper's order (``forget_first``, retain-after-forget), swapped in
``retain_first``, which ``lur`` runs by default (``erase.methods``)::

    θ' = θ − α P(∇L_in(θ))                       # look-ahead (K steps)
    J(θ) = w_in L_in(θ) + w_out L_out(θ') [+ λ₀ L_r(θ)]
    ∇J   = w_in ∇L_in(θ) + w_out (I − α ∇²L_in(θ) P) ∇L_out(θ') [+ λ₀ ∇L_r(θ)]

``P`` is the identity (``precondition="none"``) or Adam's diagonal preconditioner
(``"adam"``: ∇/(√v̂+ε) from the optimizer's second moments, ``sign`` before the first step),
so that the look-ahead is measured in the optimizer's own step units.

The optional λ₀ term (``retain_weight_at_theta``, forget-first only) also judges retention at
the weights the step is taken from: the look-ahead alone leaves L_r(θ) free to drift up (the
step logs of ``benchmarks/frontier.py`` show it rising where ``joint``'s falls). It costs one
more forward and backward of the retain batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

LossClosure = Callable[[Callable, int], torch.Tensor]
GradReducer = Callable[[Sequence[torch.Tensor]], None]

from .choices import (  # noqa: E402  (re-exported)
    ANCHOR_WITH_RETAIN_FIRST,
    MODES,
    ORDERS,
    PRECONDITIONERS,
)


@dataclass
class MetaConfig:
    """Settings of the retain-after-forget step (every field is recorded in erase_config.json)."""

    mode: str = "first_order"
    inner_lr: float = 1e-4
    inner_steps: int = 1
    retain_weight: float = 1.0
    retain_weight_at_theta: float = 0.0
    order: str = "forget_first"
    precondition: str = "adam"
    eps: float = 1e-8
    # the robust variants (erase.robust_step.RobustConfig): α_a = relearn_scale × inner_lr,
    # w the weight of the forget loss at the attacked point, ρ the prompt perturbation radius
    relearn_scale: float = 10.0
    relearn_weight: float = 1.0
    adv_radius: float = 0.1
    # lur-resist (erase.resist_step.ResistConfig): K simulated attacker AdamW steps at rate
    # resist_lr, w the weight of the forget loss at the relearned weights
    resist_steps: int = 3
    resist_lr: float = 1e-4
    resist_weight: float = 1.0
    resist_every: int = 1  # the attack is simulated on every N-th step; lur's step between

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"meta mode must be one of {MODES}, got {self.mode!r}")
        if self.order not in ORDERS:
            raise ValueError(f"meta order must be one of {ORDERS}, got {self.order!r}")
        if self.precondition not in PRECONDITIONERS:
            raise ValueError(
                f"meta precondition must be one of {PRECONDITIONERS}, got {self.precondition!r}"
            )
        if self.inner_steps < 1:
            raise ValueError("meta inner_steps must be >= 1")
        if self.retain_weight_at_theta < 0:
            raise ValueError("meta retain_weight_at_theta must be >= 0")
        if self.resist_every < 1:
            raise ValueError(f"resist_every must be >= 1, got {self.resist_every}")
        if self.retain_weight_at_theta > 0 and self.order != "forget_first":
            raise ValueError(ANCHOR_WITH_RETAIN_FIRST)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepContext:
    """What a gradient rule needs besides the losses."""

    model: nn.Module
    params: list[torch.Tensor]
    n_micro: int = 1
    reduce_grads: GradReducer | None = None
    loss_scale: float = 1.0
    optimizer: torch.optim.Optimizer | None = None
    names: list[str] | None = None  # parameter names, for the functional (second-order) path


# ---------------------------------------------------------------------------------------------
# small vector helpers over lists of tensors (torch._foreach_* keeps them fused and allocation-free)


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


def _sqnorm(a: Sequence[torch.Tensor]) -> float:
    return float(sum(x.double().pow(2).sum() for x in a))


def _cos(dot: float, sq_a: float, sq_b: float) -> float:
    den = math.sqrt(sq_a) * math.sqrt(sq_b)
    return dot / den if den > 0 else 0.0


def _grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]


def accumulate_grad(ctx: StepContext, loss_fn: LossClosure, model_fn=None) -> float:
    """Backward ``loss_fn`` over all micro-batches into fresh ``p.grad``; returns the mean loss.

    Gradients are unscaled (fp16 loss scaling) and all-reduced across processes here, so every
    caller sees the global-batch gradient before it uses it (e.g. for the look-ahead).
    """
    for p in ctx.params:
        p.grad = None
    total = 0.0
    model_fn = ctx.model if model_fn is None else model_fn
    for micro in range(ctx.n_micro):
        loss = loss_fn(model_fn, micro) / ctx.n_micro
        (loss * ctx.loss_scale).backward() if ctx.loss_scale != 1.0 else loss.backward()
        total += float(loss.detach())
    grads = _grads(ctx.params)
    for p, g in zip(ctx.params, grads):
        p.grad = g
    if ctx.loss_scale != 1.0:
        torch._foreach_mul_(grads, 1.0 / ctx.loss_scale)
    if ctx.reduce_grads is not None:
        ctx.reduce_grads(grads)
    return total


@torch.no_grad()
def eval_loss(ctx: StepContext, loss_fn: LossClosure) -> float:
    return sum(float(loss_fn(ctx.model, m)) for m in range(ctx.n_micro)) / ctx.n_micro


def _take_grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Move ``p.grad`` out of the parameters without copying (the one extra buffer)."""
    out = []
    for p in params:
        out.append(p.grad)
        p.grad = None
    return out


def _adam_denominator(ctx: StepContext, p: torch.Tensor, g: torch.Tensor, eps: float):
    """√v̂ + ε from the optimizer's state, or |g| + ε (Adam's first step is lr·sign(g))."""
    state = ctx.optimizer.state.get(p, {}) if ctx.optimizer is not None else {}
    v = state.get("exp_avg_sq")
    if v is None:
        return g.detach().abs().add_(eps)
    step = state.get("step", 1)
    beta2 = ctx.optimizer.param_groups[0].get("betas", (0.9, 0.999))[1]
    if torch.is_tensor(step) and step.device.type != "cpu":
        # fused AdamW keeps the count on the GPU: .item() would be a host sync per tensor
        bias = 1.0 - beta2 ** step.double().clamp(min=1.0)
    else:
        bias = 1.0 - beta2 ** max(float(step), 1.0)
    return (v / bias).sqrt().add_(eps)


def _direction(ctx: StepContext, cfg: MetaConfig, p, g, mask_p=None):
    """P(g) for one tensor, masked: the look-ahead direction (a per-tensor temporary only)."""
    d = g / _adam_denominator(ctx, p, g, cfg.eps) if cfg.precondition == "adam" else g
    return d * mask_p if mask_p is not None else d


@torch.no_grad()
def _apply_lookahead(ctx, cfg, grads, mask, sign: float, record=None) -> None:
    """θ += sign·α·P(g) in place; ``record`` (K > 1) accumulates the displacement to undo."""
    for i, (p, g) in enumerate(zip(ctx.params, grads)):
        d = _direction(ctx, cfg, p, g, None if mask is None else mask[i])
        p.add_(d, alpha=sign * cfg.inner_lr)
        if record is not None:
            record[i].add_(d, alpha=cfg.inner_lr)


def _weights(cfg: MetaConfig) -> tuple[float, float]:
    """(w_in, w_out): the forget loss has weight 1, the retain loss λ, whichever comes first."""
    return (1.0, cfg.retain_weight) if cfg.order == "forget_first" else (cfg.retain_weight, 1.0)


# ---------------------------------------------------------------------------------------------
# the rules


def joint_gradient(
    ctx: StepContext, forget: LossClosure, retain: LossClosure | None, retain_weight: float
) -> dict:
    """The naive baseline: ∇L_f(θ) + λ ∇L_r(θ), both at the same weights, one gradient buffer."""
    l_f = accumulate_grad(ctx, forget)
    stats = {"loss_forget": l_f}
    if retain is None or retain_weight == 0.0:
        return stats
    g_f = _take_grads(ctx.params)
    l_r = accumulate_grad(ctx, retain)
    g_r = _grads(ctx.params)
    stats.update(_conflict_stats(g_f, g_r, suffix=""))
    torch._foreach_mul_(g_r, retain_weight)
    torch._foreach_add_(g_r, g_f)
    stats.update(loss_retain=l_r)
    return stats


def pcgrad_gradient(
    ctx: StepContext, forget: LossClosure, retain: LossClosure, retain_weight: float
) -> dict:
    """Explicit gradient surgery (PCGrad / LTU-style harmonisation): drop the conflicting parts."""
    l_f = accumulate_grad(ctx, forget)
    g_f = _take_grads(ctx.params)
    l_r = accumulate_grad(ctx, retain)
    g_r = _grads(ctx.params)
    stats = {"loss_forget": l_f, "loss_retain": l_r}
    stats.update(_conflict_stats(g_f, g_r, suffix=""))
    dot, sq_f, sq_r = stats["_dot"], stats["_sq_f"], stats["_sq_r"]
    if dot < 0:
        # project each onto the normal plane of the other (both from the original pair)
        cf = -dot / sq_r if sq_r > 0 else 0.0
        cr = -dot / sq_f if sq_f > 0 else 0.0
        for a, b in zip(g_f, g_r):
            a_old = a.clone()
            a.add_(b, alpha=cf)
            b.add_(a_old, alpha=cr)
    torch._foreach_mul_(g_r, retain_weight)
    torch._foreach_add_(g_r, g_f)
    stats["projected"] = float(dot < 0)
    return stats


def _conflict_stats(g_a, g_b, suffix: str) -> dict:
    dot, sq_a, sq_b = _dot(g_a, g_b), _sqnorm(g_a), _sqnorm(g_b)
    return {
        f"cos{suffix}": _cos(dot, sq_a, sq_b),
        f"grad_norm_forget{suffix}": math.sqrt(sq_a),
        f"grad_norm_retain{suffix}": math.sqrt(sq_b),
        "_dot": dot,
        "_sq_f": sq_a,
        "_sq_r": sq_b,
    }


def meta_gradient(
    ctx: StepContext,
    forget: LossClosure,
    retain: LossClosure,
    cfg: MetaConfig,
    monitor: bool = False,
    mask: Sequence[torch.Tensor] | None = None,
) -> dict:
    """Retain-after-forget gradient into ``p.grad``; see the module docstring.

    ``monitor`` also evaluates the outer loss and its gradient at θ (one extra forward and
    backward) to log the conflict at θ next to the one at θ'; with ``retain_weight_at_theta``
    the λ₀ term takes ∇L_r(θ) afresh rather than keeping the monitor's (that would hold a third
    parameter-sized buffer through the look-ahead, on monitor steps only). ``mask`` (SalUn
    saliency, 0/1 per element) restricts the look-ahead to the salient weights.
    """
    if cfg.mode == "second_order":
        # fused attention kernels (flash, memory-efficient) have no double backward
        with sdpa_kernel(SDPBackend.MATH):
            return _meta_second_order(ctx, forget, retain, cfg, mask, monitor)
    inner, outer = (forget, retain) if cfg.order == "forget_first" else (retain, forget)
    w_in, w_out = _weights(cfg)
    stats: dict = {}

    l_in = accumulate_grad(ctx, inner)
    g_in = _take_grads(ctx.params)  # the one parameter-sized buffer beyond p.grad
    if monitor:
        l_out_theta = accumulate_grad(ctx, outer)
        s = _conflict_stats(g_in, _grads(ctx.params), suffix="_at_theta")
        stats.update({k: v for k, v in s.items() if not k.startswith("_")})
        stats["loss_outer_at_theta"] = l_out_theta
        for p in ctx.params:
            p.grad = None

    # look-ahead θ' = θ − α Σ_k P(g_k); with K = 1 the displacement is recomputed to restore,
    # with K > 1 it is kept in a second buffer.
    displacement = [torch.zeros_like(p) for p in ctx.params] if cfg.inner_steps > 1 else None
    _apply_lookahead(ctx, cfg, g_in, mask, sign=-1.0, record=displacement)
    for _ in range(cfg.inner_steps - 1):
        accumulate_grad(ctx, inner)
        g_k = _take_grads(ctx.params)
        _apply_lookahead(ctx, cfg, g_k, mask, sign=-1.0, record=displacement)
        del g_k

    l_out = accumulate_grad(ctx, outer)
    g_out = _grads(ctx.params)
    s = _conflict_stats(g_in, g_out, suffix="")
    stats.update({k: v for k, v in s.items() if not k.startswith("_")})

    with torch.no_grad():
        if displacement is None:
            _apply_lookahead(ctx, cfg, g_in, mask, sign=1.0)
        else:
            torch._foreach_add_([p.data for p in ctx.params], displacement)
        torch._foreach_mul_(g_out, w_out)
        torch._foreach_add_(g_out, g_in, alpha=w_in)

    key_in, key_out = ("forget", "retain") if cfg.order == "forget_first" else ("retain", "forget")
    stats[f"loss_{key_in}"] = l_in
    stats[f"loss_{key_out}_lookahead"] = l_out
    if monitor:
        stats[f"loss_{key_out}"] = stats.pop("loss_outer_at_theta")
    if cfg.retain_weight_at_theta > 0:
        # back at θ: move the combined gradient out, take ∇L_r(θ) into p.grad and add it back
        # (no third parameter-sized buffer: g_in is gone by now)
        del g_in
        combined = _take_grads(ctx.params)
        stats["loss_retain"] = accumulate_grad(ctx, retain)
        g_anchor = _grads(ctx.params)
        torch._foreach_mul_(g_anchor, cfg.retain_weight_at_theta)
        torch._foreach_add_(g_anchor, combined)
    return stats


def _meta_second_order(ctx, forget, retain, cfg: MetaConfig, mask, monitor: bool = False) -> dict:
    """Exact ∇J through the look-ahead (Hessian-vector products via double backward).

    For parameter subsets and small models: the graph of the inner gradient is kept. The
    preconditioner is treated as a constant. Across processes only the final gradient is
    averaged (the look-ahead uses each rank's own inner gradient).
    """
    from torch.func import functional_call

    inner, outer = (forget, retain) if cfg.order == "forget_first" else (retain, forget)
    w_in, w_out = _weights(cfg)
    params, names = list(ctx.params), ctx.names
    if names is None:
        lookup = {id(p): n for n, p in ctx.model.named_parameters()}
        names = [lookup[id(p)] for p in params]

    def at(weights):
        table = dict(zip(names, weights))
        return lambda *a, **kw: functional_call(ctx.model, table, a, kw)

    def mean_loss(fn, model_fn):
        return sum(fn(model_fn, m) for m in range(ctx.n_micro)) / ctx.n_micro

    for p in params:
        p.grad = None
    l_in = mean_loss(inner, ctx.model)
    cur, g_first = params, None
    for k in range(cfg.inner_steps):
        loss_k = l_in if k == 0 else mean_loss(inner, at(cur))
        g_k = torch.autograd.grad(loss_k, cur, create_graph=True)
        if g_first is None:
            g_first = [g.detach() for g in g_k]
        cur = [
            c - cfg.inner_lr * _direction(ctx, cfg, p, g, None if mask is None else mask[i])
            for i, (c, p, g) in enumerate(zip(cur, params, g_k))
        ]
    l_out = mean_loss(outer, at(cur))
    g_out_at_lookahead = torch.autograd.grad(l_out, cur, retain_graph=True)
    total = w_in * l_in + w_out * l_out
    l_anchor = None
    if cfg.retain_weight_at_theta > 0:
        l_anchor = mean_loss(retain, ctx.model)
        total = total + cfg.retain_weight_at_theta * l_anchor
    grads = torch.autograd.grad(total, params)
    for p, g in zip(params, grads):
        p.grad = g.detach()
    if ctx.reduce_grads is not None:
        ctx.reduce_grads([p.grad for p in params])
    s = _conflict_stats(g_first, [g.detach() for g in g_out_at_lookahead], suffix="")
    stats = {k: v for k, v in s.items() if not k.startswith("_")}
    key_in, key_out = ("forget", "retain") if cfg.order == "forget_first" else ("retain", "forget")
    stats[f"loss_{key_in}"] = float(l_in.detach())
    stats[f"loss_{key_out}_lookahead"] = float(l_out.detach())
    if l_anchor is not None:
        stats["loss_retain"] = float(l_anchor.detach())
    if monitor:
        # the outer loss and its gradient at θ taken as the first-order monitor takes them
        # (micro-batch by micro-batch, all-reduced), the step's gradient set aside meanwhile
        step_grads = _take_grads(params)
        stats[f"loss_{key_out}"] = accumulate_grad(ctx, outer)
        s = _conflict_stats(g_first, _grads(params), suffix="_at_theta")
        stats.update({k: v for k, v in s.items() if not k.startswith("_")})
        for p, g in zip(params, step_grads):
            p.grad = g
    return stats
