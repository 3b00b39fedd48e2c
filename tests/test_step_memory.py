"""Memory of the first-order meta step: at most one parameter-sized buffer beyond ``joint``.

The design promise of ``lur`` first-order is that the look-ahead costs one extra
parameter-sized buffer (the kept forget gradient), no copy of the weights. Measured with the
benchmarks' live-tensor accounting (``benchmarks/step_cost.py: LiveBytes``, device-free), on an
MLP with many parameters and tiny activations so that parameter-sized buffers dominate.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from erase.meta_step import MetaConfig, StepContext, joint_gradient, meta_gradient

ROOT = Path(__file__).resolve().parent.parent


def _live_bytes_mode():
    spec = importlib.util.spec_from_file_location("step_cost", ROOT / "benchmarks" / "step_cost.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while it executes
    spec.loader.exec_module(mod)
    return mod.LiveBytes


LiveBytes = _live_bytes_mode()


def _setup(seed=0):
    torch.manual_seed(seed)
    layers = []
    for _ in range(4):
        layers += [nn.Linear(192, 192, dtype=torch.float32), nn.Tanh()]
    model = nn.Sequential(*layers, nn.Linear(192, 4, dtype=torch.float32))
    g = torch.Generator().manual_seed(seed + 1)
    xf = torch.randn(4, 192, generator=g, dtype=torch.float32)
    xr = torch.randn(4, 192, generator=g, dtype=torch.float32)
    yf = torch.randn(4, 4, generator=g, dtype=torch.float32)
    yr = torch.randn(4, 4, generator=g, dtype=torch.float32)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, foreach=True)
    ctx = StepContext(model=model, params=params, optimizer=opt)

    def forget(fn, micro):
        return (fn(xf) - yf).pow(2).mean()

    def retain(fn, micro):
        return (fn(xr) - yr).pow(2).mean()

    return model, params, opt, ctx, forget, retain


def _param_bytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def _step(rule, ctx, opt, forget, retain):
    if rule == "joint":
        joint_gradient(ctx, forget, retain, 1.0)
    else:
        cfg = MetaConfig(mode="first_order", inner_lr=1e-3, precondition="adam")
        meta_gradient(ctx, forget, retain, cfg)
    opt.step()
    for p in ctx.params:
        p.grad = None


@functools.cache
def _peak(rule, extra_copies: int = 0) -> tuple[int, int]:
    """(peak bytes a full optimizer step allocates, parameter bytes); optionally the forget
    closure also keeps ``extra_copies`` full copies of the weights alive for the step."""
    model, params, opt, ctx, forget, retain = _setup()
    _step(rule, ctx, opt, forget, retain)  # warm-up: the optimizer state exists from now on
    kept = []

    def leaky_forget(fn, micro):
        if not kept:
            kept.extend(p.detach().clone() for _ in range(extra_copies) for p in params)
        return forget(fn, micro)

    with LiveBytes() as live:
        _step(rule, ctx, opt, leaky_forget, retain)
        kept.clear()
    assert live.live < 0.01 * _param_bytes(params), "the step left memory behind"
    return live.peak, _param_bytes(params)


def test_lur_first_order_needs_at_most_one_parameter_buffer_beyond_joint():
    joint, pbytes = _peak("joint")
    lur, _ = _peak("lur")
    slack = 0.05 * pbytes
    assert pbytes > 500_000  # parameter-sized buffers dominate the activations
    assert lur - joint <= pbytes + slack, (
        f"lur allocates {(lur - joint) / pbytes:.2f} parameter sizes more than joint"
    )


@pytest.mark.parametrize("copies", [1, 2])
def test_measurement_resolves_one_weight_copy(copies):
    """The accounting sees a deliberate copy of the weights: one reads as one parameter size,
    and a second full copy would fail the bound above."""
    base, pbytes = _peak("lur")
    leaky, _ = _peak("lur", extra_copies=copies)
    assert abs((leaky - base) - copies * pbytes) <= 0.05 * pbytes
    if copies == 2:
        joint, _ = _peak("joint")
        assert leaky - joint > pbytes + 0.05 * pbytes
