"""The embedded digits world: real data, the committed classifier and DDPM, sampling, digits-FID."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import assert_same_pixels

from erase.embedded.classifier import classifier_accuracy, load_digits_classifier
from erase.embedded.ddpm import (
    NULL_CLASS,
    digits_ddpm_path,
    load_digits_ddpm,
    make_digits_unet,
    train_digits_ddpm,
)
from erase.embedded.digits import ASSETS_DIR, digits_split, load_digits_images, real_digits_of
from erase.errors import EraseError
from erase.metrics.classification import class_accuracy, erasure_metrics
from erase.metrics.fid import fid_from_images, inception_feature_extractor
from erase.sampling import sample_class_conditional

SAMPLES_PER_DIGIT = 4
FAST_STEPS = 20
# The committed DDPM clears this with margin (world.json: ~99 % at 50 steps, guidance 1.5); an untrained
# UNet lands near chance (10 %).
MIN_SAMPLE_ACCURACY = 0.8


@pytest.fixture(scope="module")
def classifier():
    return load_digits_classifier()


@pytest.fixture(scope="module")
def ddpm():
    unet, scheduler, world = load_digits_ddpm()
    return unet, scheduler, world


@pytest.fixture(scope="module")
def digits():
    return load_digits_images()


def test_load_digits_images(digits):
    images, labels = digits
    assert images.shape == (1797, 1, 8, 8)
    assert images.dtype == torch.float32 and labels.dtype == torch.long
    assert images.min() == -1.0 and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))
    assert torch.bincount(labels).min() >= 170


def test_digits_split_is_fixed_stratified_and_disjoint():
    a, b = digits_split(seed=0), digits_split(seed=0)
    assert torch.equal(a.test_index, b.test_index)
    assert not set(a.train_index.tolist()) & set(a.test_index.tolist())
    assert len(a.train_index) + len(a.test_index) == 1797
    assert abs(len(a.test_index) / 1797 - 0.25) < 0.01
    assert torch.bincount(a.test_labels).min() >= 40
    assert not torch.equal(digits_split(seed=1).test_index, a.test_index)
    with pytest.raises(EraseError):
        digits_split(test_fraction=1.5)


def test_committed_classifier_accuracy(classifier):
    split = digits_split(seed=0)
    assert classifier_accuracy(classifier, split.test_images, split.test_labels) >= 0.95
    assert classifier.features(split.test_images[:3]).shape == (3, classifier.feature_dim)


def test_committed_ddpm_draws_the_asked_digit(ddpm, classifier):
    unet, scheduler, world = ddpm
    assert digits_ddpm_path().is_dir()
    assert world["null_class"] == NULL_CLASS and world["image_size"] == 8
    assert world["evaluation"]["sample_accuracy"] >= 0.9
    labels = torch.arange(10).repeat_interleave(SAMPLES_PER_DIGIT)
    images = sample_class_conditional(
        unet,
        scheduler,
        labels,
        guidance_scale=world["guidance_scale"],
        num_inference_steps=FAST_STEPS,
        seed=123,
    )
    assert images.shape == (len(labels), 1, 8, 8)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert class_accuracy(classifier, images, labels) >= MIN_SAMPLE_ACCURACY


def test_untrained_ddpm_fails_the_same_check(ddpm, classifier):
    _, scheduler, _ = ddpm
    torch.manual_seed(0)
    unet = make_digits_unet().eval()
    labels = torch.arange(10).repeat_interleave(SAMPLES_PER_DIGIT)
    images = sample_class_conditional(unet, scheduler, labels, num_inference_steps=FAST_STEPS)
    assert class_accuracy(classifier, images, labels) < 0.5


def test_sampling_is_deterministic_per_seed(ddpm):
    unet, scheduler, _ = ddpm
    labels = [0, 3, 7, 7, 9, 1, 2]
    kw = {"num_inference_steps": 5, "seed": 7}
    a = sample_class_conditional(unet, scheduler, labels, batch_size=256, **kw)
    b = sample_class_conditional(unet, scheduler, labels, batch_size=256, **kw)
    assert torch.equal(a, b)  # same process, shapes and threads: bit-identical
    # Per-sample noise generators: the batch split does not change the images. The batch shape
    # changes the kernels' blocking, so the floats differ in rounding (assert_same_pixels says
    # by how much): the 8-bit images agree within one level.
    for batch_size in (1, 3):
        c = sample_class_conditional(unet, scheduler, labels, batch_size=batch_size, **kw)
        assert_same_pixels(a, c)
    d = sample_class_conditional(
        unet, scheduler, labels, batch_size=256, num_inference_steps=5, seed=8
    )
    assert (a - d).abs().max() > 0.1
    # Sample i depends only on (seed + i, label i): a prefix reproduces the first images.
    e = sample_class_conditional(unet, scheduler, labels[:2], **kw)
    assert_same_pixels(a[:2], e)


def test_sampling_under_autocast(ddpm):
    unet, scheduler, _ = ddpm
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = sample_class_conditional(unet, scheduler, [1, 2], num_inference_steps=3)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()


def test_sampling_rejects_bad_labels(ddpm):
    unet, scheduler, _ = ddpm
    with pytest.raises(EraseError):
        sample_class_conditional(unet, scheduler, [11], num_inference_steps=2)


def test_digits_fid(classifier, digits):
    images, labels = digits
    # Identical sets: equal means, so FID = tr(2S - 2 sqrt(S S)), computed in float64 through
    # the eigenvalues of S S. Their error is <= d eps64 lmax^2 each and a square root turns it
    # into <= sqrt(d eps64) lmax; over d = 64 features with lmax ~ 11 (this classifier's
    # features) the worst case is 2 d sqrt(d eps64) lmax ~ 2e-4 (measured: ~1e-13).
    assert abs(fid_from_images(images, images, classifier)) < 1e-3
    ones, eights = images[labels == 1], images[labels == 8]
    same_class = fid_from_images(ones[:90], ones[90:], classifier)
    other_class = fid_from_images(ones, eights, classifier)
    assert other_class > 10 * same_class
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert fid_from_images(images, noise, classifier) > 10 * same_class
    with pytest.raises(EraseError):
        fid_from_images(images[:1], images, classifier)


def test_inception_fid_fails_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("ERASE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("ERASE_OFFLINE", "1")  # never a 90 MB download on a machine that is online
    with pytest.raises(EraseError, match="Inception|torch-fidelity"):
        inception_feature_extractor()


def test_erasure_metrics_on_real_digits(classifier, digits):
    images, labels = digits
    by_class = {c: images[labels == c][:40] for c in range(10)}
    erased = dict(by_class)
    erased[7] = by_class[1]  # the "erased" model draws 1s when asked for 7s
    m = erasure_metrics(classifier, classifier, by_class, erased, forget_classes=[7])
    assert m["unlearning_accuracy"] > 0.9
    assert m["before"]["unlearning_accuracy"] < 0.1
    assert m["retained_accuracy"] > 0.95
    assert set(m["per_class_accuracy"]) == set(range(10))
    assert 0 <= m["fid_remaining"] < 5
    assert abs(m["fid_remaining_before_vs_after"]) < 1e-3  # identical sets: see test_digits_fid
    assert real_digits_of([7]).shape[0] == int((labels == 7).sum())


def test_training_runs_and_loss_goes_down(tmp_path):
    unet = make_digits_unet(block_out_channels=(16,), layers_per_block=1, attention_head_dim=8)
    unet, scheduler, info = train_digits_ddpm(
        output_dir=tmp_path / "ddpm",
        max_steps=40,
        batch_size=16,
        unet=unet,
        progress=False,
        loss_curve_every=20,
    )
    first, last = info["losses_every_20"]
    assert last < first
    assert info["training"]["steps"] == 40
    unet2, scheduler2, world = load_digits_ddpm(tmp_path / "ddpm")
    assert world["training"]["steps"] == 40
    assert (tmp_path / "ddpm" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    for k, v in unet.state_dict().items():
        assert torch.equal(v, unet2.state_dict()[k])


def test_committed_configs_name_no_machine_path():
    """diffusers writes the folder a model was loaded from into ``_name_or_path`` on save; a
    committed asset must not carry the path of the machine that made it."""
    assets = ASSETS_DIR
    configs = sorted(assets.rglob("*.json"))
    assert configs
    for path in configs:
        data = json.loads(path.read_text())
        name = data.get("_name_or_path", "") if isinstance(data, dict) else ""
        assert not Path(str(name)).is_absolute(), f"{path.relative_to(assets)} names {name}"
