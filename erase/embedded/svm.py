"""A second digits judge from another model family, for agreement checks of the CNN's verdicts.

scikit-learn's RBF support-vector classifier on the raw 8×8 pixels, fitted on the same real
train split as the CNN (:func:`digits_split`, seed 0) in about a second, so it needs no asset.
It shares neither architecture, features nor training code with
:mod:`erase.embedded.classifier`: when both agree, a figure is not one classifier's artefact.
"""

from __future__ import annotations

from functools import lru_cache

import torch

SVM_SETTINGS = "sklearn.svm.SVC(C=10, gamma='scale') on raw pixels, real train split"


@lru_cache(maxsize=1)
def digits_svm():
    """``(fitted SVC, its accuracy on the real test split)``; fitted once per process."""
    from sklearn.svm import SVC

    from .digits import digits_split

    split = digits_split(seed=0)
    model = SVC(C=10.0, gamma="scale").fit(
        split.train_images.flatten(1).numpy(), split.train_labels.numpy()
    )
    pred = model.predict(split.test_images.flatten(1).numpy())
    return model, float((pred == split.test_labels.numpy()).mean())


def svm_predict(images: torch.Tensor) -> torch.Tensor:
    """Predicted digits of ``[N, 1, 8, 8]`` images in [-1, 1]."""
    model, _ = digits_svm()
    x = images.detach().float().clamp(-1, 1).flatten(1).cpu().numpy()
    return torch.as_tensor(model.predict(x))


def svm_erasure_shares(after: dict, forget_classes) -> dict:
    """The SVM's verdict on an evaluation's samples (``{class: images}``): the share of the
    forget classes' samples it does not see as their class, and its accuracy on the rest."""
    forget = {int(k) for k in forget_classes}
    erased, kept = [], []
    for c, images in after.items():
        hits = (svm_predict(images) == int(c)).float()
        (erased if int(c) in forget else kept).append(hits)
    return {
        "judge": SVM_SETTINGS,
        "test_accuracy": round(digits_svm()[1], 4),
        "unlearning_accuracy": float(1 - torch.cat(erased).mean()) if erased else None,
        "retained_accuracy": float(torch.cat(kept).mean()) if kept else None,
    }
