"""`lur` against each baseline, concept by concept, by the rule issue 13 states as its target.

A method beats another on a held-out concept when it is better on one axis (erased share, or
the rest's retained accuracy) with the other axis equal within its 95 % interval or better;
"better" means the two intervals are disjoint. Both better on one axis each is a trade; both
equal is a tie. The target: on or above every baseline on at least two thirds of the held-out
concepts (4 of the 6 held-out digits).

The intervals pool every seed's images: the erased share's is the Wilson interval of the
judged held-out images; the retained accuracy's is the Wilson interval of the images behind
it (class: 9 other digits × samples per class; concept: the mean of the other digits' and the
other styles' accuracies, whose Wilson half-widths combine in quadrature).
"""

from __future__ import annotations

import math
from collections import defaultdict

from forget_ua import wilson  # the interval the held-out tables already print

from erase.embedded.styles import DIGIT_WORDS, STYLES

TARGET_SHARE = 2 / 3


def wins_needed(n_concepts: int) -> int:
    """Wins the target asks for: two thirds of the held-out concepts, rounded up."""
    return math.ceil(TARGET_SHARE * n_concepts - 1e-9)


def _flag(argv: list[str], name: str, default: int) -> int:
    return int(argv[argv.index(name) + 1]) if name in argv else default


def retained_parts(result: dict, default_eval: dict) -> list[tuple[float, int]]:
    """(accuracy, images) of each part averaged into one run's retained accuracy."""
    job = result["job"]
    if job["task"] == "class":
        n = _flag(job["argv"], "--eval_samples_per_class", default_eval["class"])
        return [(result["retained"], 9 * n)]
    n = _flag(job["argv"], "--eval_images_per_class", default_eval["concept"])
    words = job["concept"].split("+")
    digits = sum(w in DIGIT_WORDS for w in words)
    styles = sum(w in STYLES for w in words)
    return [
        (result["other_digits"], n * (len(DIGIT_WORDS) - digits)),
        (result["other_styles"], n * (len(STYLES) - styles)),
    ]


def axes(rows: list[dict], default_eval: dict) -> dict:
    """Pooled erased share and retained accuracy of one method on one concept, with intervals."""
    missed, n = sum(r["ua_missed"] for r in rows), sum(r["ua_n"] for r in rows)
    parts = defaultdict(lambda: [0.0, 0])  # part index → [correct images, images]
    for r in rows:
        for i, (acc, m) in enumerate(retained_parts(r, default_eval)):
            parts[i][0] += acc * m
            parts[i][1] += m
    kept = [c / m for c, m in parts.values()]
    intervals = [wilson(c, m) for c, m in parts.values()]
    mid = sum((lo + hi) / 2 for lo, hi in intervals) / len(intervals)
    half = math.sqrt(sum(((hi - lo) / 2) ** 2 for lo, hi in intervals)) / len(intervals)
    return {
        "erased": missed / n,
        "erased_interval": list(wilson(missed, n)),
        "retained": sum(kept) / len(kept),
        "retained_interval": [mid - half, mid + half],
        "runs": len(rows),
        "fid": _mean_or_none([r.get("fid") for r in rows]),
    }


def _mean_or_none(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _cmp(a: list[float], b: list[float]) -> int:
    """+1 when interval a lies above b, −1 below, 0 when they overlap."""
    return 1 if a[0] > b[1] else -1 if a[1] < b[0] else 0


def verdict(ours: dict, theirs: dict) -> str:
    e = _cmp(ours["erased_interval"], theirs["erased_interval"])
    k = _cmp(ours["retained_interval"], theirs["retained_interval"])
    if e == k == 0:
        return "tie"
    if min(e, k) >= 0:
        return "win"
    if max(e, k) <= 0:
        return "loss"
    return "trade"


SYMBOL = {"win": "▲", "loss": "▼", "tie": "=", "trade": "↔"}


def head_to_head(
    results: list[dict], concepts: list[str], default_eval: dict, seed_free=frozenset()
) -> dict:
    """Per reference method (`lur` and its variants) and baseline: the verdict per concept.

    Only concepts both methods have run on count, each over the seeds both have finished, so
    a partial comparison is not tilted by one method having more seeds. A ``seed_free``
    baseline (one run whatever the seed) stands against every seed of the other.
    """
    by = defaultdict(list)  # (label, concept) → rows
    for r in results:
        if "error" not in r:
            by[r["job"]["label"], r["job"]["concept"]].append(r)
    labels = list(dict.fromkeys(r["job"]["label"] for r in results if "error" not in r))
    refs = [x for x in labels if x == "lur" or x.startswith("lur-")]
    baselines = [x for x in labels if x not in refs]
    out = {}
    for ref in refs:
        for base in baselines:
            per = {}
            for c in concepts:
                ours_seeds = {r["job"]["seed"] for r in by[ref, c]}
                free = base in seed_free and bool(by[base, c])
                seeds = ours_seeds if free else ours_seeds & {r["job"]["seed"] for r in by[base, c]}
                if not seeds:
                    continue
                ours = axes([r for r in by[ref, c] if r["job"]["seed"] in seeds], default_eval)
                theirs = axes(
                    [r for r in by[base, c] if free or r["job"]["seed"] in seeds], default_eval
                )
                per[c] = {
                    "verdict": verdict(ours, theirs),
                    "seeds": sorted(seeds),
                    ref: ours,
                    base: theirs,
                }
            counts = {v: sum(p["verdict"] == v for p in per.values()) for v in SYMBOL}
            fids = [(p[ref]["fid"], p[base]["fid"]) for p in per.values()]
            fids = [(a, b) for a, b in fids if a is not None and b is not None]
            out[f"{ref} vs {base}"] = {
                "per_concept": per,
                "counts": counts,
                "compared": len(per),
                "lower_fid": sum(a < b for a, b in fids) if fids else None,
                "target_met": len(per) == len(concepts)
                and counts["win"] >= wins_needed(len(concepts)),
            }
    return out


def head_to_head_lines(h2h: dict, concepts: list[str]) -> list[str]:
    """The Markdown section: one row per pair, one column per held-out concept."""
    if not h2h:
        return []
    need = wins_needed(len(concepts))
    fid = any(h["lower_fid"] is not None for h in h2h.values())
    lines = [
        "## `lur` against each baseline, per held-out concept",
        "",
        "▲ better on one axis (erased share or retained accuracy: 95 % intervals disjoint) "
        "with the other equal within its interval or better; ▼ the reverse; = both equal "
        "within their intervals; ↔ better on one axis, worse on the other. Each cell pools "
        "the seeds both methods have finished. Target (issue 13): ▲ on at least "
        f"{need} of the {len(concepts)} held-out concepts against every baseline."
        + (
            " Lower digits-FID: on how many of the compared digits the first method's mean "
            "FID is lower (no interval: one FID per run)."
            if fid
            else ""
        ),
        "",
        "| pair | "
        + " | ".join(concepts)
        + " | ▲ / = / ↔ / ▼ |"
        + (" lower digits-FID |" if fid else "")
        + " target |",
        "|---|" + "---|" * len(concepts) + "---|" + ("---|" if fid else "") + "---|",
    ]
    for pair, h in h2h.items():
        cells = [
            SYMBOL[h["per_concept"][c]["verdict"]] if c in h["per_concept"] else "–"
            for c in concepts
        ]
        c = h["counts"]
        if h["compared"] < len(concepts):
            status = f"{h['compared']} of {len(concepts)} compared"
        else:
            status = "met" if h["target_met"] else "not met"
        lines.append(
            f"| {pair} | "
            + " | ".join(cells)
            + f" | {c['win']} / {c['tie']} / {c['trade']} / {c['loss']} |"
            + (f" {h['lower_fid']} of {h['compared']} |" if fid else "")
            + f" {status} |"
        )
    lines.append("")
    refs = list(dict.fromkeys(pair.split(" vs ")[0] for pair in h2h))
    for ref in refs:
        pairs = {p.split(" vs ")[1]: h for p, h in h2h.items() if p.startswith(f"{ref} vs ")}
        short = [b for b, h in pairs.items() if not h["target_met"]]
        lines.append(
            f"- `{ref}` meets the target against {len(pairs) - len(short)} of {len(pairs)} "
            "baselines"
            + (": not against " + ", ".join(f"`{b}`" for b in short) if short else "")
            + "."
        )
    return [*lines, ""]
