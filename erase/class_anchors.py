"""Which retained classes the random-label forget target draws from.

Random label (SalUn) regresses the forget class onto the frozen model's prediction for a random
other class. Over many draws the regression's target is the *average* of those predictions, so
the erased class converges to something like the average image of the other classes. Where the
judge reads that average as the forget class itself, the erasure converges onto the concept it
should remove: on the digits the mean of any nine digits is read as an 8, and random label left
digit 8 12–59 % erased through a 600-step cap.

The rule, with no tuned number: while the judge gives a forget class at least chance probability
(1 / number of classes) on the class-balanced mean of the anchor classes' training images, drop
the anchor whose removal lowers that probability most. Where the mean is not read so (every
digit but 8), the anchors stay every other class: plain random label, unchanged.
"""

from __future__ import annotations

import torch

from .errors import EraseError


@torch.no_grad()
def _forget_probability(judge, means: dict, anchors: list[int], forget: list[int]) -> float:
    mean = torch.stack([means[c] for c in anchors]).mean(0, keepdim=True)
    param = next(judge.parameters())
    was_training = judge.training
    judge.eval()
    probs = judge(mean.to(param.device, param.dtype)).float().softmax(-1)[0]
    judge.train(was_training)
    return float(probs[forget].max())


def choose_anchor_classes(images, labels, forget_classes, num_classes: int, judge) -> dict:
    """The anchors the rule keeps, and why: ``{"anchor_classes", "dropped", "p_forget_every_other",
    "p_forget_anchors", "threshold", "rule"}``. ``images`` in [-1, 1] at the judge's input."""
    forget = sorted(set(int(k) for k in forget_classes))
    means = {
        c: images[labels == c].float().mean(0)
        for c in range(num_classes)
        if c not in forget and bool((labels == c).any())
    }
    if not means:
        raise EraseError("the training data has no images of a class to retain")
    threshold = 1.0 / num_classes
    anchors = sorted(means)
    p_all = p = _forget_probability(judge, means, anchors, forget)
    dropped = []
    while p >= threshold and len(anchors) > 1:
        trials = {
            c: _forget_probability(judge, means, [a for a in anchors if a != c], forget)
            for c in anchors
        }
        drop = min(trials, key=lambda c: (trials[c], c))
        anchors.remove(drop)
        dropped.append(drop)
        p = trials[drop]
    return {
        "anchor_classes": anchors,
        "dropped": dropped,
        "p_forget_every_other": round(p_all, 4),
        "p_forget_anchors": round(p, 4),
        "threshold": round(threshold, 4),
        "rule": "drop anchors while the judge gives a forget class at least chance probability "
        "on the anchors' mean training image",
    }
