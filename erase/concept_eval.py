"""Before/after numbers of a concept erasure on the embedded text-to-image world.

The judge (digit head + style head, trained on real digits only) classifies images generated
for every digit prompt and every styled prompt; the original pipeline's numbers are cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .embedded.digits import cache_dir
from .embedded.styles import DIGIT_WORDS, STYLES
from .io import atomic_write_json
from .metrics.intervals import share_interval


def _pipe_key(pipe, images_per_class) -> str:
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for k, v in sorted(pipe.unet.state_dict().items()):
            h.update(k.encode())
            h.update(str(float(v.float().sum())).encode())
    h.update(str(images_per_class).encode())
    h.update(b"second judge")  # evaluations cached before the second judge lack its verdicts
    return h.hexdigest()[:20]


def evaluate_world(pipe, images_per_class: int = 40, use_cache: bool = True) -> dict:
    from .embedded.tiny_sd import evaluate_pipeline

    path = cache_dir() / "eval" / f"tiny-sd-{_pipe_key(pipe, images_per_class)}.json"
    if use_cache and path.exists():
        return json.loads(path.read_text())
    result = evaluate_pipeline(pipe, images_per_class=images_per_class)
    if use_cache:
        atomic_write_json(path, result)
    return result


def summarize(concept_words: list[str], before: dict, after: dict) -> dict:
    """Headline numbers for erased digits/styles: the erased share and the kept accuracies;
    under ``check_judge`` the same by the second judge, where both evaluations have one."""
    digits = [w for w in concept_words if w in DIGIT_WORDS]
    styles = [s for s in concept_words if s in STYLES]
    out = {"before": before, "after": after, "erased_digits": digits, "erased_styles": styles}
    out.update(_headline(digits, styles, before, after))
    if digits or styles:  # the erased share of the concept's own images, and how sure it is
        erased = concept_measures(out)["erased"]
        out["erased_interval"] = share_interval(erased, erased_images(out))
    out["conventions"] = (
        "judge: independent digit/style classifier trained on real digits rendered in each "
        "style; accuracy = share of generated images judged as the prompt's digit/style; "
        f"{before.get('images_per_class')} images per digit and per style, fixed seeds"
    )
    second = before.get("second_judge"), after.get("second_judge")
    if all(isinstance(s, dict) for s in second):
        check = {"erased_digits": digits, **_headline(digits, styles, *second)}
        measures = concept_measures(check)
        check["unlearning_accuracy"] = measures["erased"]
        check["retained_accuracy"] = measures["kept"]
        out["check_judge"] = {
            "judge": second[1]["judge"],
            "test_accuracy": second[1]["test_accuracy"],
            **check,
        }
    return out


def concept_measures(metrics: dict, when: str = "after") -> dict:
    """Erased share and kept accuracy of one model from its ``summarize`` metrics (``when``:
    ``after`` the erasure, or ``before`` it: the original)."""
    kind = "digit" if metrics["erased_digits"] else "style"
    other_digits = metrics[f"other_digits_accuracy_{when}"]
    other_styles = metrics[f"other_styles_accuracy_{when}"]
    return {
        "erased": 1 - metrics[f"forget_{kind}_accuracy_{when}"],
        "kept": (other_digits + other_styles) / 2,  # the rest of the world, digits and styles
        "other_digits": other_digits,
        "other_styles": other_styles,
        "fid": None,
    }


def erased_images(metrics: dict) -> int:
    """How many images of the concept its erased share was judged on."""
    words = metrics["erased_digits"] or metrics["erased_styles"]
    return int(metrics["after"].get("images_per_class", 0)) * len(words)


def _headline(digits: list[str], styles: list[str], before: dict, after: dict) -> dict:
    def mean(xs):
        xs = list(xs)
        return sum(xs) / len(xs) if xs else float("nan")

    out = {}
    for tag, r in (("before", before), ("after", after)):
        pd, ps = r["per_digit_accuracy"], r["per_style_accuracy"]
        out[f"forget_digit_accuracy_{tag}"] = mean(pd[w] for w in digits)
        out[f"other_digits_accuracy_{tag}"] = mean(pd[w] for w in DIGIT_WORDS if w not in digits)
        out[f"forget_style_accuracy_{tag}"] = mean(ps[s] for s in styles)
        out[f"other_styles_accuracy_{tag}"] = mean(ps[s] for s in STYLES if s not in styles)
        out[f"styled_digit_accuracy_{tag}"] = r["styled_prompt_digit_accuracy"]
    return out


def concept_words(concept_name: str) -> list[str]:
    return [p for p in concept_name.split("+") if p in DIGIT_WORDS or p in STYLES]


def write_concept_metrics(out_dir: Path, metrics: dict) -> None:
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
