"""The 2048-d Inception FID: fetched once where online, one clear line where offline, and its
weights only ever read without running pickled code.

Real Inception weights cannot be downloaded here, so a file with the same architecture and
random weights stands in for them: every line of the loading and feature path is the real one.
"""

from __future__ import annotations

import pytest
import torch

from erase.errors import EraseError
from erase.metrics import fid


@pytest.fixture(scope="module")
def random_inception_file(tmp_path_factory):
    """torch-fidelity's Inception-v3 with random weights, saved as its weights file is."""
    tf = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    mp = pytest.MonkeyPatch()
    # build the network without its download: skip only the weight loading, keep the layers
    mp.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
    mp.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    try:
        torch.manual_seed(0)
        net = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        state = {k: v.clone() for k, v in net.state_dict().items()}
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("inception") / fid.INCEPTION_WEIGHTS_FILE
    torch.save(state, path)
    return path


def test_offline_gives_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("ERASE_OFFLINE", "1")
    with pytest.raises(EraseError) as err:
        fid.inception_feature_extractor()
    msg = str(err.value)
    assert "\n" not in msg and "Inception" in msg and "ERASE_OFFLINE" in msg
    assert fid.INCEPTION_WEIGHTS_ENV in msg and str(tmp_path) in msg
    assert not (tmp_path / "hub" / "checkpoints" / fid.INCEPTION_WEIGHTS_FILE).exists()


def test_cached_weights_are_found_where_torchmetrics_keeps_them(
    monkeypatch, tmp_path, random_inception_file
):
    """A file in torch hub's checkpoint folder is used as is: no download is attempted."""
    import shutil

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(fid.INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("ERASE_OFFLINE", "1")
    cached = fid.inception_weights_cache()
    assert cached == tmp_path / "hub" / "checkpoints" / fid.INCEPTION_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    shutil.copy(random_inception_file, cached)
    assert fid.fetch_inception_weights() == cached
    extractor = fid.inception_feature_extractor()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    feats = extractor(images)
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()


def test_inception_fid_on_real_digits(random_inception_file):
    from erase.embedded.digits import load_digits_images

    images, labels = load_digits_images()
    ones, sevens = images[labels == 1][:6], images[labels == 7][:6]
    same = fid.inception_fid_from_images(ones, ones.clone(), random_inception_file)
    other = fid.inception_fid_from_images(ones, sevens, random_inception_file)
    assert abs(same) < 1e-2 and other > same


def test_pickled_code_in_a_weights_file_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    bad = tmp_path / fid.INCEPTION_WEIGHTS_FILE
    torch.save({"x": Payload()}, bad)
    with pytest.raises(EraseError, match="cannot load Inception weights"):
        fid.inception_feature_extractor(bad)
