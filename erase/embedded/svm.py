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


STYLED_SVM_SETTINGS = (
    "two sklearn.svm.SVC(C=10, gamma='scale'), digit and style, on raw 16x16 pixels of the real "
    "train split rendered in every style"
)


@lru_cache(maxsize=1)
def styled_svms():
    """The text-to-image world's second judge: ``(digit SVC, style SVC, accuracies on the real
    test split rendered in every style)``, fitted once per process (about 3 s). Like
    :func:`digits_svm` it shares neither architecture nor training code with the world's CNN
    judge (:mod:`erase.embedded.judge`), only the real training images."""
    from sklearn.svm import SVC

    from .judge import styled_digits

    images, digits, styles = styled_digits("train")
    x = images.flatten(1).numpy()
    digit_svm = SVC(C=10.0, gamma="scale").fit(x, digits.numpy())
    style_svm = SVC(C=10.0, gamma="scale").fit(x, styles.numpy())
    test, test_digits, test_styles = styled_digits("test")
    xt = test.flatten(1).numpy()
    accuracy = {
        "digit_accuracy": round(float((digit_svm.predict(xt) == test_digits.numpy()).mean()), 4),
        "style_accuracy": round(float((style_svm.predict(xt) == test_styles.numpy()).mean()), 4),
    }
    return digit_svm, style_svm, accuracy


def styled_svm_predict(images) -> tuple[torch.Tensor, torch.Tensor]:
    """``(digit_pred [N], style_pred [N])`` for PIL images or ``[N,C,H,W]`` tensors in [-1, 1],
    prepared exactly as the CNN judge sees them."""
    from .judge import to_judge_input

    digit_svm, style_svm, _ = styled_svms()
    x = to_judge_input(images).detach().float().cpu().flatten(1).numpy()
    return torch.as_tensor(digit_svm.predict(x)), torch.as_tensor(style_svm.predict(x))
