"""The class-erasure task's batches: what the retain loss actually trains on."""

from __future__ import annotations

import pytest
import torch
from conftest import _tiny_class_unet

from erase.errors import EraseError

NULL = 10


def _retain_labels(null_prob: float, batch: int = 256) -> torch.Tensor:
    """The class labels the real tiny UNet is called with by the retain loss of one step."""
    from diffusers import DDPMScheduler

    from erase.data.class_data import fit_to_model, load_class_data
    from erase.params import FrozenModel
    from erase.tasks.class_erasure import ClassErasureTask

    torch.manual_seed(0)
    unet = _tiny_class_unet()
    data = fit_to_model(load_class_data(None), 1, 8)
    task = ClassErasureTask(
        FrozenModel(_tiny_class_unet()), DDPMScheduler(), data, [3], NULL, "anchor", "denoise",
        batch, "cpu", retain_null_prob=null_prob,
    )  # fmt: skip
    _, retain = task.closures(torch.Generator().manual_seed(0))
    seen = []

    def recording_unet(x_t, t, class_labels):
        seen.append(class_labels.clone())
        return unet(x_t, t, class_labels=class_labels)

    assert torch.isfinite(retain(recording_unet, 0))
    return seen[0]


def test_retain_batch_trains_the_null_class_at_the_given_rate():
    """Guidance uses the unconditional branch: the retain loss must reach it too."""
    labels = _retain_labels(0.25)
    share = (labels == NULL).float().mean().item()
    assert 0.15 < share < 0.35, share  # 256 draws at p = 0.25: ± 0.1 is > 3.5 standard errors
    assert not (labels == 3).any()  # the forget class never enters the retain batch
    assert set(labels[labels != NULL].tolist()) <= set(range(10)) - {3}
    assert not (_retain_labels(0.0) == NULL).any()


def test_retain_null_prob_out_of_range_is_a_clear_error():
    with pytest.raises(EraseError, match=r"--retain_null_prob must be in \[0, 1\)"):
        _retain_labels(1.0)


class _Recording(torch.nn.Module):
    """The real tiny UNet, remembering the class labels it is asked for."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.labels = unet, []

    def forward(self, x, t, class_labels=None):
        self.labels.append(class_labels.clone())
        return self.unet(x, t, class_labels=class_labels)


def _anchor_labels(anchor_classes, batch: int = 64) -> torch.Tensor:
    """The labels the frozen original is asked for when the forget loss builds its target."""
    from diffusers import DDPMScheduler

    from erase.data.class_data import fit_to_model, load_class_data
    from erase.params import FrozenModel
    from erase.tasks.class_erasure import ClassErasureTask

    torch.manual_seed(0)
    frozen = _Recording(_tiny_class_unet())
    data = fit_to_model(load_class_data(None), 1, 8)
    task = ClassErasureTask(
        FrozenModel(frozen), DDPMScheduler(), data, [8], NULL, "anchor", "denoise", batch,
        "cpu", anchor_classes=anchor_classes,
    )  # fmt: skip
    task.closures(torch.Generator().manual_seed(0))
    return torch.cat(frozen.labels)


def test_the_anchor_target_uses_the_given_anchor_classes_only():
    """Random label draws every other class; --anchor_classes narrows it (digit 8's fix)."""
    assert set(_anchor_labels(None).tolist()) == set(range(10)) - {8}  # 64 draws of 9 classes
    assert set(_anchor_labels([1]).tolist()) == {1}
    assert set(_anchor_labels([1, 4]).tolist()) == {1, 4}


@pytest.mark.parametrize(
    "anchors, message", [([8], "also forget classes"), ([12], r"--anchor_classes \[12\] out of")]
)
def test_bad_anchor_classes_are_refused_before_any_work(tmp_path, anchors, message):
    from erase import api

    with pytest.raises(EraseError, match=message):
        api.erase_class(8, anchor_classes=anchors, output_dir=tmp_path / "r", no_eval=True)
    assert not (tmp_path / "r" / "erase_config.json").exists()


def _rule(forget, steps: int = 10):
    """The anchor rule on the embedded digits DDPM, judged by the digits classifier (10 DDIM
    steps: the fixed point's verdict on 8 and 7 is the same as at the world's 50)."""
    from diffusers import DDPMScheduler, UNet2DModel

    from erase.class_anchors import choose_anchor_classes
    from erase.data.class_data import load_class_data
    from erase.embedded.classifier import load_digits_classifier
    from erase.embedded.ddpm import digits_ddpm_path

    folder = digits_ddpm_path()
    unet = UNet2DModel.from_pretrained(folder / "unet").eval()
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    data = load_class_data(None)
    return choose_anchor_classes(
        unet, scheduler, data.images, data.labels, forget, 10, 10, load_digits_classifier(),
        1.5, steps, samples=32,
    )  # fmt: skip


@pytest.fixture(scope="module")
def anchor_cache(tmp_path_factory):
    """A fresh verdict cache, so the rule samples here (and the job below reads its verdict)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ERASE_CACHE_DIR", str(tmp_path_factory.mktemp("erase-cache")))
        yield


@pytest.fixture(scope="module")
def eight(anchor_cache):
    return _rule([8])


def test_the_anchor_rule_narrows_random_label_only_where_its_target_cannot_erase(eight):
    """Random label converges to the frozen model guided by the anchors' mean prediction. For
    8 that fixed point still draws eights (the nine-digit average is an 8): the rule drops
    anchors until the judge sees 8 in its samples no more often than in the original's other
    digits. For 7 it is erased already: plain random label."""
    assert eight["fixed_point_erased"][0] < 0.95 and eight["dropped"]
    # stopped where the judge sees 8 no more often than in the frozen model's other digits
    seen = [1 - share for share in eight["fixed_point_erased"]]
    assert seen[-1] <= eight["false_alarm"] < min(seen[:-1]) or len(eight["anchor_classes"]) == 1
    assert len(eight["fixed_point_erased"]) == len(eight["dropped"]) + 1
    assert sorted(eight["anchor_classes"] + eight["dropped"]) == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    seven = _rule([7])
    assert seven["fixed_point_erased"] == [1.0] and seven["false_alarm"] is None
    assert seven["dropped"] == [] and seven["anchor_classes"] == [0, 1, 2, 3, 4, 5, 6, 8, 9]


def test_runs_side_by_side_sample_the_anchor_verdict_once(tmp_path, monkeypatch):
    """A run that finds another computing the same verdict waits for it and reads it, instead of
    sampling the fixed point a second time (the frontier's two workers on one digit)."""
    import json
    import threading

    from filelock import FileLock

    monkeypatch.setenv("ERASE_CACHE_DIR", str(tmp_path))
    _rule([5], steps=2)  # where this verdict is cached
    (cached,) = (tmp_path / "anchor-rule").glob("*.json")
    cached.unlink()
    result = {}
    with FileLock(str(cached.with_suffix(".lock"))):  # "another run" is computing it
        waiting = threading.Thread(target=lambda: result.update(_rule([5], steps=2)))
        waiting.start()
        waiting.join(timeout=2.0)
        assert waiting.is_alive()  # blocked on the lock, not sampling
        cached.write_text(json.dumps({"anchor_classes": [0, 1], "written_by": "the other run"}))
    waiting.join(timeout=60)
    assert result == {"anchor_classes": [0, 1], "written_by": "the other run"}


def test_the_job_records_the_anchor_rule_and_a_given_list_overrides_it(tmp_path, eight):
    import json

    from erase import api

    api.erase_class(8, output_dir=tmp_path / "auto", no_eval=True, max_train_steps=1,
                    num_inference_steps=10)  # fmt: skip
    config = json.loads((tmp_path / "auto" / "erase_config.json").read_text())
    assert config["anchor_rule"] == eight  # the job asked the rule (its cached verdict)
    assert config["anchor_classes"] == eight["anchor_classes"]
    card = (tmp_path / "auto" / "README.md").read_text()
    anchors = ", ".join(map(str, eight["anchor_classes"]))
    assert f"| anchor_classes | {anchors} |" in card
    assert f"mapped onto {anchors} only" in card
    # given the same anchors by hand, the job asks no rule and trains the very same weights:
    # the verdict is what the task trains toward, not only what the config records
    api.erase_class(8, output_dir=tmp_path / "given", no_eval=True, max_train_steps=1,
                    anchor_classes=eight["anchor_classes"])  # fmt: skip
    config = json.loads((tmp_path / "given" / "erase_config.json").read_text())
    assert config["anchor_classes"] == eight["anchor_classes"] and "anchor_rule" not in config
    auto, given = (_unet_weights(tmp_path / run) for run in ("auto", "given"))
    assert auto.keys() == given.keys()
    assert all(torch.equal(auto[k], given[k]) for k in auto)
    # (that the task honours given anchors: test_the_anchor_target_uses_the_given_anchor_classes_only)


def _unet_weights(run) -> dict:
    from safetensors.torch import load_file

    return load_file(next((run / "unet").glob("*.safetensors")))
