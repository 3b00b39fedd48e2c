"""lur-resist's meta step (erase.resist_step), checked with numbers on small models."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import assert_bit_identical, flat_grad, load_weights, mse_closures, step_context
from torch import nn

from erase.meta_step import MetaConfig, meta_gradient
from erase.resist_step import ResistConfig, resist_gradient

float64 = pytest.mark.usefixtures("float64_default")


def _setup(seed=3):
    g = torch.Generator().manual_seed(seed)
    xf, yf, xr, yr = (torch.randn(8, n, generator=g) for n in (3, 2, 3, 2))
    xl = [torch.randn(8, 3, generator=g) for _ in range(4)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    forget, retain = mse_closures(xf, yf, xr, yr)

    def relearn(k):
        return lambda fn, m: (fn(xl[k]) - 1.0).pow(2).mean()

    return model, forget, retain, relearn


@float64
@pytest.mark.parametrize("steps", [1, 3])
def test_resist_rule_is_lur_plus_the_forget_gradient_after_the_attackers_adamw_steps(steps):
    """∇J = ∇J_lur(θ) + w ∇L_f(θ_K) with θ_K from torch.optim.AdamW itself (weight decay 0),
    and θ is restored exactly after the simulation."""
    model, forget, retain, relearn = _setup()
    meta = MetaConfig(inner_lr=0.05, retain_weight=0.5, precondition="none")
    cfg = ResistConfig(steps=steps, lr=0.02, weight=0.7)
    m_rule, m_lur, m_att = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    before = [p.detach().clone() for p in m_rule.parameters()]
    stats = resist_gradient(
        step_context(m_rule), forget, retain, [relearn(k) for k in range(steps)], meta, cfg
    )
    for p, q in zip(m_rule.parameters(), before):
        assert torch.equal(p.detach(), q)
    meta_gradient(step_context(m_lur), forget, retain, meta)
    opt = torch.optim.AdamW(m_att.parameters(), lr=0.02, weight_decay=0.0)
    for k in range(steps):
        opt.zero_grad()
        relearn(k)(m_att, 0).backward()
        opt.step()
    g_fa = torch.autograd.grad(forget(m_att, 0), list(m_att.parameters()))
    expected = flat_grad(m_lur) + 0.7 * torch.cat([g.flatten() for g in g_fa])
    torch.testing.assert_close(flat_grad(m_rule), expected, rtol=1e-10, atol=1e-12)
    if steps > 1:  # the simulated attacker really relearns
        assert stats["loss_relearn_last"] < stats["loss_relearn"]
    with torch.no_grad():
        assert stats["loss_forget_relearned"] == pytest.approx(float(forget(m_att, 0)), rel=1e-12)


@float64
def test_resist_weight_zero_is_lur():
    model, forget, retain, relearn = _setup(4)
    meta = MetaConfig(inner_lr=0.05, retain_weight=0.5, precondition="none")
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    no_weight = ResistConfig(steps=2, lr=0.02, weight=0.0)
    resist_gradient(step_context(a), forget, retain, [relearn(0), relearn(1)], meta, no_weight)
    meta_gradient(step_context(b), forget, retain, meta)
    torch.testing.assert_close(flat_grad(a), flat_grad(b), rtol=1e-12, atol=1e-14)


def test_resist_config_refuses_bad_values():
    with pytest.raises(ValueError, match="steps"):
        ResistConfig(steps=0)
    with pytest.raises(ValueError, match="lr"):
        ResistConfig(lr=0.0)


def _erase_class(out, method: str, *flags) -> dict:
    from erase.cli import erase_class

    erase_class.run(
        erase_class.parse_args(
            ["--forget_class", "7", "--method", method, "--max_train_steps", "1"]
            + ["--train_batch_size", "4", "--no_eval", "--monitor_every", "0"]
            + ["--stop_at_erased", "off", "--output_dir", str(out), *map(str, flags)]
        )
    )
    return load_weights(out)


def test_lur_resist_without_its_term_is_lur_bit_for_bit_and_with_it_moves_elsewhere(tmp_path):
    """Through the real job: the simulated attack runs on the model's own weights and restores
    them exactly, and draws its batches from its own generators, so ``--resist_weight 0`` gives
    ``lur``'s weights (same λ) bit for bit; the default term moves them; knobs are recorded."""
    import json

    # lur-resist is built on the paper's order, lur's before its default changed
    lur = _erase_class(
        tmp_path / "lur", "lur", "--retain_weight", 2, "--meta_order", "forget_first"
    )
    w0 = _erase_class(tmp_path / "w0", "lur-resist", "--resist_weight", 0, "--resist_steps", 2)
    w1 = _erase_class(tmp_path / "w1", "lur-resist", "--resist_steps", 2)
    assert_bit_identical(lur, w0)
    moved = max(float((lur[k] - w1[k]).abs().max()) for k in lur)
    assert moved > 1e-5  # about the learning rate (1e-4) on some coordinates
    meta = json.loads((tmp_path / "w1" / "erase_config.json").read_text())["meta"]
    assert (meta["resist_steps"], meta["resist_lr"], meta["resist_weight"]) == (2, 1e-4, 2.0)
    # without the flags, the method's own K, N and w: 6, 2 and 2 for the class task (tuned on
    # digit 2); each flag overrides its own knob only
    from erase.cli import erase_class
    from erase.methods import CLASS_METHODS, with_flag_overrides
    from erase.runs import configs_from_args

    cases = (
        ([], (6, 2, 2.0)),
        (["--resist_steps", "2"], (2, 2, 2.0)),
        (["--resist_every", "1", "--resist_weight", "1"], (6, 1, 1.0)),
    )
    for flags, (k, n, w) in cases:
        args = ["--forget_class", "2", "--method", "lur-resist", "--output_dir", "OUT", *flags]
        args = erase_class.parse_args(args)
        method = with_flag_overrides(CLASS_METHODS["lur-resist"], args)  # as erase_class does
        meta, _ = configs_from_args(args, method)
        assert (meta.resist_steps, meta.resist_every, meta.resist_weight) == (k, n, w)
        assert meta.retain_weight == 2.0


def test_resist_every_simulates_the_attack_on_every_nth_step_and_lurs_step_between(tmp_path):
    """``--resist_every 2``: step 1 runs the attack as every step does (the same losses, bit
    for bit), step 2 is ``lur``'s step (no relearning losses in its log line), so two steps land
    elsewhere than two attacked steps; the knob is recorded."""
    import json

    def log(name):
        lines = json.loads((tmp_path / name / "step_log.json").read_text())
        return [{k: v for k, v in r.items() if k != "time"} for r in lines]

    two = ["--resist_steps", 2, "--max_train_steps", 2]
    both = _erase_class(tmp_path / "b1", "lur-resist", *two, "--resist_every", 1)
    half = _erase_class(tmp_path / "b2", "lur-resist", *two, "--resist_every", 2)
    assert max(float((both[k] - half[k]).abs().max()) for k in both) > 1e-6
    assert log("b1")[0] == log("b2")[0]  # step 1: the same attacked step
    assert ["loss_relearn" in r for r in log("b1")] == [True, True]
    assert ["loss_relearn" in r for r in log("b2")] == [True, False]
    meta = json.loads((tmp_path / "b2" / "erase_config.json").read_text())["meta"]
    assert meta["resist_every"] == 2


def test_bad_resist_knobs_are_refused_before_any_work(tmp_path):
    from erase.cli import erase_class
    from erase.errors import EraseError

    bad = (
        ("resist_steps", "0"),
        ("resist_every", "0"),
        ("resist_lr", "0"),
        ("resist_weight", "-1"),
    )
    for flag, value in bad:
        args = erase_class.parse_args(
            ["--forget_class", "7", "--output_dir", str(tmp_path / flag), f"--{flag}", value]
        )
        with pytest.raises(EraseError, match=flag):
            erase_class.run(args)
        assert not (tmp_path / flag).exists()
