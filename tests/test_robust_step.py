"""The robust variants' meta steps (erase.robust_step), checked with numbers on small models."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import flat_grad, mse_closures, step_context
from torch import nn
from torch.func import functional_call

from erase.meta_step import MetaConfig, meta_gradient
from erase.robust_step import RobustConfig, adversarial_gradient, relearn_gradient

pytestmark = pytest.mark.usefixtures("float64_default")


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, n, generator=g) for n in (3, 2, 3, 2, 3)] + [torch.randn(2, generator=g)]


def test_relearn_rule_is_the_gradient_of_its_objective():
    """A relearning loss linear in every weight has zero Hessian, so with λ = 0 the first-order
    rule is exact: ∇[L_f(θ) + w L_f(θ − α_a ∇L_rl(θ))], checked by finite differences."""
    xf, yf, xr, yr, xl, wl = _data()
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    names = [n for n, _ in model.named_parameters()]

    def forget(fn, m):
        return (fn(xf) - yf).pow(4).mean()  # non-quadratic: its gradient moves with θ

    def retain(fn, m):
        return (fn(xr) - yr).pow(2).mean()

    def relearn(fn, m):
        return (fn(xl).sum(0) * wl).sum()  # linear in (weight, bias)

    alpha, scale, w = 0.05, 4.0, 0.7
    meta = MetaConfig(inner_lr=alpha, retain_weight=0.0, precondition="none")
    robust = RobustConfig(relearn_scale=scale, weight=w)
    before = [p.detach().clone() for p in model.parameters()]
    stats = relearn_gradient(step_context(model), forget, retain, relearn, meta, robust)
    analytic = flat_grad(model)
    for p, q in zip(model.parameters(), before):  # θ is restored after the look-ahead
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=1e-14)
    assert {"loss_relearn", "loss_forget_relearned", "loss_forget"} <= set(stats)

    def J(flat):
        ps = [flat[:6].view(2, 3), flat[6:]]
        fn = lambda x: functional_call(model, dict(zip(names, ps)), (x,))  # noqa: E731
        g = torch.autograd.grad(relearn(fn, 0), ps, create_graph=True)
        ahead = [p - alpha * scale * gi for p, gi in zip(ps, g)]
        fa = lambda x: functional_call(model, dict(zip(names, ahead)), (x,))  # noqa: E731
        return forget(fn, 0) + w * forget(fa, 0)

    flat = torch.cat([q.flatten() for q in before])
    h = 1e-6
    numeric = torch.zeros_like(flat)
    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = h
        plus, minus = (flat + e).requires_grad_(), (flat - e).requires_grad_()
        numeric[i] = (J(plus).detach() - J(minus).detach()) / (2 * h)
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-9)
    # and the relearning term is really there
    plain = copy.deepcopy(model)
    meta_gradient(step_context(plain), forget, retain, meta)
    assert (flat_grad(plain) - analytic).abs().max() > 1e-3


def test_relearn_rule_adds_the_forget_gradient_at_the_relearned_point_to_lur():
    """With λ > 0 (a non-linear relearning loss): lur's gradient + w ∇L_f(θ − α_a ∇L_rl)."""
    xf, yf, xr, yr, xl, _ = _data(2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    forget, retain = mse_closures(xf, yf, xr, yr)

    def relearn(fn, m):
        return fn(xl).pow(2).mean()

    meta = MetaConfig(inner_lr=0.1, retain_weight=0.5, precondition="none")
    robust = RobustConfig(relearn_scale=3.0, weight=0.8)
    m_rule, m_lur, m_ahead = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    relearn_gradient(step_context(m_rule), forget, retain, relearn, meta, robust)
    meta_gradient(step_context(m_lur), forget, retain, meta)
    g_rl = torch.autograd.grad(relearn(m_ahead, 0), list(m_ahead.parameters()))
    with torch.no_grad():
        for p, g in zip(m_ahead.parameters(), g_rl):
            p.sub_(0.1 * 3.0 * g)
    g_fa = torch.autograd.grad(forget(m_ahead, 0), list(m_ahead.parameters()))
    expected = flat_grad(m_lur) + 0.8 * torch.cat([g.flatten() for g in g_fa])
    torch.testing.assert_close(flat_grad(m_rule), expected, rtol=1e-10, atol=1e-12)


class _CondNet(nn.Module):
    """A stand-in UNet: ``forward(x, t, encoder_hidden_states=c)``."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, t, encoder_hidden_states):
        return torch.tanh(self.lin(encoder_hidden_states)).mean(1) + x


def test_adversarial_rule_takes_the_forget_loss_at_the_worst_nearby_condition():
    """Hand-computed: c' = c + ρ‖c‖ ∇_c L_f / ‖∇_c L_f‖ per sample, then ∇_θ L_f(θ, c')."""
    g = torch.Generator().manual_seed(3)
    c, x, y = (
        torch.randn(5, 6, 4, generator=g),
        torch.randn(5, 3, generator=g),
        torch.randn(5, 3, generator=g),
    )
    torch.manual_seed(0)
    model = _CondNet()

    def forget_at(cond):
        return lambda fn, m: (fn(x, 0, encoder_hidden_states=cond) - y).pow(2).mean()

    forget = forget_at(c)

    def retain(fn, m):
        return fn(x, 0, encoder_hidden_states=c).pow(2).mean()

    rho = 0.2
    meta = MetaConfig(inner_lr=0.1, retain_weight=0.0, precondition="none")
    m_rule, m_ref = copy.deepcopy(model), copy.deepcopy(model)
    stats = adversarial_gradient(
        step_context(m_rule), forget, retain, meta, RobustConfig(adv_radius=rho)
    )

    cc = c.clone().requires_grad_(True)
    (gc,) = torch.autograd.grad(forget_at(cc)(m_ref, 0), [cc])
    per = gc.flatten(1).norm(dim=1).view(-1, 1, 1)
    c_adv = c + rho * c.flatten(1).norm(dim=1).view(-1, 1, 1) * gc / per
    loss_adv = forget_at(c_adv)(m_ref, 0)
    expected = torch.autograd.grad(loss_adv, list(m_ref.parameters()))
    torch.testing.assert_close(flat_grad(m_rule), torch.cat([e.flatten() for e in expected]))
    assert stats["loss_forget"] > stats["loss_forget_clean"]  # the step ascends
    assert stats["loss_forget"] == pytest.approx(float(loss_adv.detach()), rel=1e-12)
