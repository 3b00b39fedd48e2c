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
