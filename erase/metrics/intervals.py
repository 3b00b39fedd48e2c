"""How sure an erased share is: the 95 % Wilson score interval of a proportion.

A run's evaluation judges 40-50 images of the concept, and at that size 90 % and 95 % erased
cannot be told apart (45 of 50 erased: 79-96 %), so a share goes out with its interval. Written
here rather than taken from scipy's ``binomtest(...).proportion_ci`` because the comparison
tables pool accuracies averaged over classes, whose "successes" are not whole numbers.
"""

from __future__ import annotations

import math


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of ``successes`` out of ``n`` (NaN for ``n == 0``)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # the interval always holds p; float rounding can put p = 1 a hair above its upper end
    # (900 of 900: 0.9999999999999999), which breaks error bars drawn as p minus an end
    return min(mid - half, p), max(mid + half, p)


def share_interval(share: float, n: int) -> list[float]:
    """The interval of a share measured on ``n`` images, rounded for metrics.json."""
    lo, hi = wilson(share * n, n)
    return [round(max(lo, 0.0), 4), round(min(hi, 1.0), 4)]
