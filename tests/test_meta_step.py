"""The meta step's mathematics, checked with numbers on small models."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import mse_closures, step_context
from torch import nn
from torch.func import functional_call

from erase.meta_step import MetaConfig, StepContext, joint_gradient, meta_gradient

pytestmark = pytest.mark.usefixtures("float64_default")


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    xf, yf = torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)
    xr, yr = torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)
    return xf, yf, xr, yr


def _objective(model, forget, retain, alpha, lam, lam0=0.0):
    """J(θ) = L_f(θ) + λ L_r(θ − α∇L_f(θ)) + λ₀ L_r(θ), written out for finite differences."""
    names = [n for n, _ in model.named_parameters()]

    def J(flat):
        shapes = [p.shape for p in model.parameters()]
        ps, i = [], 0
        for s in shapes:
            n = int(torch.tensor(s).prod())
            ps.append(flat[i : i + n].view(s))
            i += n
        fn = lambda x: functional_call(model, dict(zip(names, ps)), (x,))  # noqa: E731
        lf = forget(fn, 0)
        g = torch.autograd.grad(lf, ps, create_graph=True)
        ahead = [p - alpha * gi for p, gi in zip(ps, g)]
        fa = lambda x: functional_call(model, dict(zip(names, ahead)), (x,))  # noqa: E731
        return lf + lam * retain(fa, 0) + (lam0 * retain(fn, 0) if lam0 else 0.0)

    return J


def _central_differences(J, model, h=1e-6):
    """∂J/∂θᵢ by central differences at the model's weights, one coordinate at a time."""
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    numeric = torch.zeros_like(flat)
    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = h
        numeric[i] = (
            J((flat + e).requires_grad_()).detach() - J((flat - e).requires_grad_()).detach()
        ) / (2 * h)
    return numeric


def test_second_order_matches_finite_differences():
    model = _mlp()
    forget, retain = mse_closures(*_data())
    alpha, lam = 0.3, 0.7
    cfg = MetaConfig(mode="second_order", inner_lr=alpha, retain_weight=lam, precondition="none")
    ctx = step_context(model)
    meta_gradient(ctx, forget, retain, cfg)
    analytic = torch.cat([p.grad.flatten() for p in model.parameters()])

    numeric = _central_differences(_objective(model, forget, retain, alpha, lam), model)
    # central differences in float64: truncation h^2 J''' ~ 1e-12, rounding eps64 |J| / h ~ 2e-10
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)
    # and it is not just the first-order gradient: the Hessian term is visible
    m1 = copy.deepcopy(model)
    meta_gradient(
        step_context(m1),
        forget,
        retain,
        MetaConfig(inner_lr=alpha, retain_weight=lam, precondition="none"),
    )
    first = torch.cat([p.grad.flatten() for p in m1.parameters()])
    assert (first - analytic).abs().max() > 1e-3


def test_first_order_equals_exact_when_forget_hessian_is_zero():
    """A forget loss linear in the weights has ∇²L_f = 0, so both modes must agree."""
    xf, yf, xr, yr = _data()
    # use a single linear layer so that L_f is linear in *all* trainable weights
    lin = nn.Linear(3, 2)
    w = torch.randn(2, 3)

    def forget(model_fn, micro):
        return (model_fn(xf).sum(0) * w[:, 0]).sum()  # linear in (weight, bias)

    def retain(model_fn, micro):
        return (model_fn(xr) - yr).pow(4).mean()  # non-quadratic: its Hessian varies

    cfg = dict(inner_lr=0.2, retain_weight=1.3, precondition="none")
    l1, l2 = copy.deepcopy(lin), copy.deepcopy(lin)
    meta_gradient(step_context(l1), forget, retain, MetaConfig(mode="first_order", **cfg))
    meta_gradient(step_context(l2), forget, retain, MetaConfig(mode="second_order", **cfg))
    for p, q in zip(l1.parameters(), l2.parameters()):
        # the same gradient through two float64 computations: a few dozen roundings of eps64
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)
    # the weights are restored after the look-ahead: (θ - d) + d rounds twice, by at most
    # eps64 (2.2e-16) x (|θ| + |d|) < 1e-15 for these weights (|θ| < 0.6) and steps
    for p, q in zip(l1.parameters(), lin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-15)


@pytest.mark.parametrize("mode", ["first_order", "second_order"])
def test_small_alpha_reduces_to_joint(mode):
    model = _mlp()
    forget, retain = mse_closures(*_data())
    mj, mm = copy.deepcopy(model), copy.deepcopy(model)
    joint_gradient(step_context(mj), forget, retain, retain_weight=0.5)
    meta_gradient(
        step_context(mm),
        forget,
        retain,
        MetaConfig(mode=mode, inner_lr=1e-9, retain_weight=0.5, precondition="none"),
    )
    for p, q in zip(mj.parameters(), mm.parameters()):
        # not rounding but mathematics: the meta-gradient differs from the joint one by
        # O(α λ ∇²L ∇L) = O(1e-9) here
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-9)


def test_k_steps_and_flipped_order_match_second_order_at_zero_curvature():
    """K inner steps and the flipped order run, restore θ, and log the right keys."""
    model = _mlp()
    forget, retain = mse_closures(*_data())
    before = [p.detach().clone() for p in model.parameters()]
    stats = meta_gradient(
        step_context(model),
        forget,
        retain,
        MetaConfig(inner_lr=0.05, inner_steps=3, order="retain_first", precondition="none"),
    )
    for p, q in zip(model.parameters(), before):
        # restored from the summed displacement of 3 look-ahead steps: a few roundings of eps64
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=1e-14)
    assert {"loss_retain", "loss_forget_lookahead", "cos"} <= set(stats)
    # K=3 differs from K=1
    m1 = _mlp()
    meta_gradient(
        step_context(m1),
        forget,
        retain,
        MetaConfig(inner_lr=0.05, order="retain_first", precondition="none"),
    )
    diff = max((p.grad - q.grad).abs().max() for p, q in zip(model.parameters(), m1.parameters()))
    assert diff > 1e-6


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_retain_weight_at_theta_adds_lambda0_times_the_retain_gradient_at_theta(inner_steps):
    """First order: ∇J = (plain meta-gradient) + λ₀ ∇L_r(θ), at θ restored exactly."""
    model = _mlp()
    forget, retain = mse_closures(*_data())
    base = dict(inner_lr=0.2, inner_steps=inner_steps, retain_weight=0.7, precondition="none")
    m0, m1, mr = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    meta_gradient(step_context(m0), forget, retain, MetaConfig(**base))
    stats = meta_gradient(
        step_context(m1), forget, retain, MetaConfig(**base, retain_weight_at_theta=1.5)
    )
    l_r = retain(mr, 0)
    l_r.backward()
    assert stats["loss_retain"] == pytest.approx(float(l_r.detach()), rel=1e-12)
    for p0, p1, pr, q in zip(m0.parameters(), m1.parameters(), mr.parameters(), model.parameters()):
        # two float64 sums of the same terms: a few roundings of eps64 on |g| < 10
        torch.testing.assert_close(p1.grad, p0.grad + 1.5 * pr.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(p1.detach(), q.detach(), rtol=0, atol=1e-14)
    # and the term is not negligible here: it changes the gradient
    diff = max((p1.grad - p0.grad).abs().max() for p0, p1 in zip(m0.parameters(), m1.parameters()))
    assert diff > 1e-3


def test_retain_weight_at_theta_second_order_matches_finite_differences():
    model = _mlp()
    forget, retain = mse_closures(*_data())
    alpha, lam, lam0 = 0.3, 0.7, 0.4
    cfg = MetaConfig(
        mode="second_order",
        inner_lr=alpha,
        retain_weight=lam,
        retain_weight_at_theta=lam0,
        precondition="none",
    )
    meta_gradient(step_context(model), forget, retain, cfg)
    analytic = torch.cat([p.grad.flatten() for p in model.parameters()])
    numeric = _central_differences(_objective(model, forget, retain, alpha, lam, lam0), model)
    # as test_second_order_matches_finite_differences: truncation ~1e-12, rounding ~2e-10
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", ["first_order", "second_order"])
def test_lookahead_loss_logged_is_the_loss_at_the_lookahead_point(mode):
    model = _mlp()
    forget, retain = mse_closures(*_data())
    alpha = 0.1
    ref = copy.deepcopy(model)
    lf = forget(ref, 0)
    g = torch.autograd.grad(lf, list(ref.parameters()))
    with torch.no_grad():
        for p, gi in zip(ref.parameters(), g):
            p.sub_(alpha * gi)
    expected = float(retain(ref, 0))
    cfg = MetaConfig(mode=mode, inner_lr=alpha, precondition="none")
    unmonitored = copy.deepcopy(model)
    meta_gradient(step_context(unmonitored), forget, retain, cfg)
    stats = meta_gradient(step_context(model), forget, retain, cfg, monitor=True)
    # the monitor reads, it does not change the step's gradient
    for p, q in zip(model.parameters(), unmonitored.parameters()):
        assert torch.equal(p.grad, q.grad)
    # the same float64 loss at a look-ahead point reached with another operation order
    assert stats["loss_retain_lookahead"] == pytest.approx(expected, rel=1e-12)
    assert stats["loss_retain"] == pytest.approx(float(retain(model, 0)), rel=1e-12)
    # the conflict at θ: cos(∇L_f(θ), ∇L_r(θ)), the monitor's reading in either mode
    g_f = torch.cat(
        [g.flatten() for g in torch.autograd.grad(forget(model, 0), model.parameters())]
    )
    g_r = torch.cat(
        [g.flatten() for g in torch.autograd.grad(retain(model, 0), model.parameters())]
    )
    expected_cos = float(g_f @ g_r / (g_f.norm() * g_r.norm()))
    assert stats["cos_at_theta"] == pytest.approx(expected_cos, rel=1e-9)


def _shared_private_problem(seed):
    """Forget inputs share features with retain inputs and have private ones of their own.

    Forgetting can be done on the private features alone, but the plain forget gradient also
    moves the shared ones and so conflicts with retention.
    """
    g = torch.Generator().manual_seed(seed)
    n, ds, dp = 64, 8, 8
    xf = torch.cat([torch.randn(n, ds, generator=g), torch.randn(n, dp, generator=g)], 1)
    xr = torch.cat([torch.randn(n, ds, generator=g), 0.1 * torch.randn(n, dp, generator=g)], 1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(ds + dp, 32), nn.Tanh(), nn.Linear(32, 1))
    with torch.no_grad():
        yr, yf = model(xr).clone(), model(xf).clone() + 1.0
    return model, lambda m, i: (m(xf) - yf).pow(2).mean(), lambda m, i: (m(xr) - yr).pow(2).mean()


def _train_until_forgotten(seed, method, opt_name, lr, alpha, target=0.2, max_steps=3000):
    model, forget, retain = _shared_private_problem(seed)
    opt_cls = torch.optim.SGD if opt_name == "sgd" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=lr)
    ctx = StepContext(model=model, params=list(model.parameters()), optimizer=opt)
    cosines = []
    for _ in range(max_steps):
        if method == "joint":
            cosines.append(joint_gradient(ctx, forget, retain, 1.0)["cos"])
        else:
            cfg = MetaConfig(inner_lr=alpha, precondition="adam" if opt_name == "adam" else "none")
            cosines.append(meta_gradient(ctx, forget, retain, cfg, monitor=True)["cos_at_theta"])
        opt.step()
        with torch.no_grad():
            l_f, l_r = float(forget(model, 0)), float(retain(model, 0))
        if l_f <= target:
            return l_f, l_r, sum(cosines) / len(cosines)
    raise AssertionError(f"{method} never reached forget loss {target}")


@pytest.mark.parametrize(
    "seed,opt_name,lr,alpha",
    [
        (0, "sgd", 0.05, 0.2),
        (1, "sgd", 0.05, 0.2),
        (0, "adam", 3e-3, 3e-2),
        (2, "adam", 3e-3, 3e-2),
    ],
)
def test_lur_beats_joint_on_conflicting_gradients_at_equal_forget_loss(seed, opt_name, lr, alpha):
    """Stopped when the forget loss first reaches 0.2: less retain damage, less conflict."""
    _, r_joint, cos_joint = _train_until_forgotten(seed, "joint", opt_name, lr, 0.0)
    _, r_lur, cos_lur = _train_until_forgotten(seed, "lur", opt_name, lr, alpha)
    assert r_lur < 0.6 * r_joint, (r_lur, r_joint)
    assert cos_lur > cos_joint + 0.03, (cos_lur, cos_joint)
