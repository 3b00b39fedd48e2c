"""Erase until it is gone: the stopping rule and the gap to the exact-unlearning reference.

The end-to-end test runs the real trainer on the embedded digits DDPM with a small budget:
a run that meets its target at step s must equal a fixed run of s steps bit for bit (the
checks never touch the training trajectory), and a run resumed from a checkpoint taken after a
check must end where the uninterrupted one did, with the same checks.
"""

from __future__ import annotations

import json

import pytest
import torch

from erase.errors import EraseError
from erase.reference_gap import gap_record, gaps
from erase.stopping import StopMonitor, StopRule, describe_stop, stop_target


def scripted(shares):
    """A monitor whose checks return ``shares`` in turn (the judge's verdicts)."""
    it = iter(shares)
    return StopMonitor(StopRule(target=0.9, eval_every=5, patience=2), lambda: next(it))


def test_stops_at_the_target_and_records_why():
    m = scripted([0.2, 0.6, 0.95])
    assert [m.check(s) for s in (5, 10, 15)] == [None, None, "target"]
    rec = m.finish(15, "target", cap=100)
    assert rec["reached"] and rec["erased_at_stop"] == 0.95
    assert [c["step"] for c in rec["checks"]] == [5, 10, 15]
    assert "met at step 15" in describe_stop(rec)


def test_patience_stops_a_run_that_no_longer_makes_progress():
    m = scripted([0.5, 0.7, 0.705, 0.69])
    # 0.705 is less than one point above 0.7: the third check is the first without progress;
    # the rule allows two, so it stops at the fourth
    assert [m.check(s) for s in (5, 10, 15, 20)] == [None, None, None, "patience"]


def test_cap_is_recorded_as_not_reached():
    m = scripted([0.1, 0.2])
    m.check(5)
    m.check(7)
    rec = m.finish(7, None, cap=7)
    assert rec["reason"] == "cap" and not rec["reached"]
    assert m.due(5, 7) and m.due(7, 7) and not m.due(6, 7)


def test_stop_target_reads_shares_percentages_and_words():
    assert stop_target("0.95") == pytest.approx(0.95)
    assert stop_target("95") == pytest.approx(0.95)
    assert stop_target("off") == "off" and stop_target("AUTO") == "auto"


@pytest.mark.parametrize("bad", ["1.5e3", "-0.2"])
def test_targets_that_are_not_shares_are_clear_errors(bad):
    with pytest.raises(EraseError, match="stop_at_erased"):
        StopRule(target=stop_target(bad))


def test_a_target_that_is_not_a_number_is_a_clear_error():
    with pytest.raises(EraseError, match="stop_at_erased 'most'"):
        stop_target("most")


def test_gap_and_noise_floor_are_the_mean_absolute_differences():
    run = {"erased": 0.90, "kept": 0.95, "fid": 3.0, "relearn@10": 0.80}
    ref0 = {"erased": 1.00, "kept": 0.97, "fid": 2.0, "relearn@10": 0.50}
    ref1 = {"erased": 0.98, "kept": 0.96, "fid": 2.2, "relearn@10": 0.46}
    g = gaps(run, ref0)
    assert g["avg_gap"] == pytest.approx((0.10 + 0.02 + 0.30) / 3)
    assert g["fid"] == pytest.approx(1.0) and "fid" not in g["avg_gap_terms"]
    rec = gap_record(run, [ref0, ref1])
    assert rec["noise_floor"]["avg_gap"] == pytest.approx((0.02 + 0.01 + 0.04) / 3)
    assert rec["indistinguishable_from_retraining"] is False
    assert gap_record(ref1, [ref0, ref1])["indistinguishable_from_retraining"] is True


def _erase(out, *flags):
    from erase import api

    api.erase_class(
        7,
        method="lur",
        output_dir=out,
        overwrite=True,
        no_eval=True,
        train_batch_size=8,
        learning_rate=4e-4,
        num_inference_steps=8,
        monitor_every=0,
        **dict(zip(flags[::2], flags[1::2])),
    )
    from safetensors.torch import load_file

    weights = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    return weights, json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_a_stopped_run_equals_a_fixed_run_of_its_steps_and_resumes_exactly(tmp_path):
    stop = dict(stop_at_erased="0.6", eval_every=3, stop_samples=8, max_train_steps=30)
    stop.update(checkpointing_steps=3, checkpoints_total_limit=20)
    w_stop, m = _erase(tmp_path / "stop", *sum(stop.items(), ()))
    rec = m["stopping"]
    s = m["trained_steps"]
    assert rec["reason"] == "target" and rec["step"] == s < 30, rec
    assert rec["erased_at_stop"] >= 0.6 and all(c["erased"] < 0.6 for c in rec["checks"][:-1])
    assert [c["step"] for c in rec["checks"]] == list(range(3, s + 1, 3))

    from erase import api

    report = api.write_report([tmp_path / "stop"], tmp_path / "report").read_text()
    assert "stopping.reason" in report and "| target | 0.6 |" in report, report

    w_fixed, m_fixed = _erase(tmp_path / "fixed", "stop_at_erased", "off", "max_train_steps", s)
    assert m_fixed["stopping"].startswith("off") and m_fixed["trained_steps"] == s
    assert w_fixed.keys() == w_stop.keys()
    assert all(torch.equal(w_fixed[k], w_stop[k]) for k in w_stop)

    # resume from the checkpoint after the first check: same checks, same end, same weights
    run = tmp_path / "stop"
    for ckpt in run.glob("checkpoint-*"):
        if ckpt.name != "checkpoint-3":
            import shutil

            shutil.rmtree(ckpt)
    (run / ".complete").unlink(missing_ok=True)
    w_res, m_res = _erase(run, *sum(stop.items(), ()), "resume_from_checkpoint", "checkpoint-3")
    assert m_res["stopping"]["checks"] == [
        {**c, "seconds": m_res["stopping"]["checks"][i]["seconds"]}
        for i, c in enumerate(rec["checks"])
    ]
    assert all(torch.equal(w_res[k], w_stop[k]) for k in w_stop)
