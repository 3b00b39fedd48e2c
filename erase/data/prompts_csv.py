"""Prompt sets in the formats the field publishes them: I2P, COCO-30k captions, plain lists.

The standard library's ``csv`` reader is enough here (and keeps pandas out of the
dependencies); every problem with a file becomes one ``EraseError`` that names the file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import EraseError
from ..validate import read_text_file

PROMPT_COLUMN = "prompt"
I2P_CATEGORIES = (
    "hate",
    "harassment",
    "violence",
    "self-harm",
    "sexual",
    "shocking",
    "illegal activity",
)


@dataclass(frozen=True)
class PromptRecord:
    """One prompt with the generation settings its benchmark fixes (``None`` where it fixes none)."""

    prompt: str
    seed: int | None = None
    guidance: float | None = None
    index: int = 0
    case_number: int | None = None
    categories: tuple[str, ...] = ()
    nudity_percentage: float | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)


def _read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise EraseError(f"prompt file {str(path)!r} does not exist")
    text = read_text_file(path, "prompt CSV")  # a binary or non-UTF-8 file: one clear line
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        columns = [c for c in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise EraseError(f"cannot read prompt CSV {str(path)!r}: {exc}") from None
    if PROMPT_COLUMN not in columns:
        raise EraseError(
            f"{str(path)!r} has no {PROMPT_COLUMN!r} column (columns: {', '.join(columns) or 'none'}); "
            "a prompt CSV needs a header row with a 'prompt' column"
        )
    return columns, rows


def _number(value: str | None, kind, path, line: int, column: str):
    if value is None or value.strip() == "":
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except ValueError:
        raise EraseError(
            f"{str(path)!r} line {line}: column {column!r} holds {value!r}, not a number"
        ) from None


def _split_categories(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(c.strip() for c in value.split(",") if c.strip())


def load_prompt_csv(
    path: str | os.PathLike,
    *,
    seed_column: str = "evaluation_seed",
    guidance_column: str = "evaluation_guidance",
    limit: int | None = None,
    keep_empty: bool = False,
) -> list[PromptRecord]:
    """Any CSV with a ``prompt`` column; seed/guidance columns are used where present.

    Rows with an empty prompt are dropped unless ``keep_empty`` (I2P keeps its one empty
    prompt, case 2260, so that the set stays 4,703 cases with aligned case numbers).
    """
    columns, rows = _read_rows(path)
    records = []
    for i, row in enumerate(rows):
        line = i + 2  # header is line 1
        prompt = (row.get(PROMPT_COLUMN) or "").strip()
        if not prompt and not keep_empty:
            continue
        extra = {k: v for k, v in row.items() if k and k not in (PROMPT_COLUMN,)}
        records.append(
            PromptRecord(
                prompt=prompt,
                seed=_number(row.get(seed_column), int, path, line, seed_column),
                guidance=_number(row.get(guidance_column), float, path, line, guidance_column),
                index=i,
                case_number=_number(row.get("case_number"), int, path, line, "case_number"),
                categories=_split_categories(row.get("categories")),
                nudity_percentage=_number(
                    row.get("nudity_percentage"), float, path, line, "nudity_percentage"
                ),
                extra=extra,
            )
        )
    return _limit(records, limit)


def _limit(records: list[PromptRecord], limit: int | None) -> list[PromptRecord]:
    if limit is not None:
        if limit < 1:
            raise EraseError(f"--limit must be at least 1, got {limit}")
        records = records[:limit]
    return records


def load_i2p(
    path: str | os.PathLike,
    *,
    categories: Sequence[str] | str | None = None,
    nudity_above: float | None = None,
    limit: int | None = None,
) -> list[PromptRecord]:
    """I2P prompts (``unsafe-prompts4703.csv`` format), optionally filtered.

    ``categories``: keep prompts tagged with any of these (e.g. ``"sexual"``).
    ``nudity_above``: keep prompts whose ``nudity_percentage`` is strictly greater (the
    field's "nudity > 50" subset). Filters apply before ``limit``.
    """
    columns, _ = _read_rows(path)
    missing = [
        c for c in ("categories", "evaluation_seed", "evaluation_guidance") if c not in columns
    ]
    if missing:
        raise EraseError(
            f"{str(path)!r} is not in I2P format: missing column(s) {', '.join(missing)}"
        )
    records = load_prompt_csv(path, keep_empty=True)
    if categories:
        wanted = {categories} if isinstance(categories, str) else set(categories)
        known = {c for r in records for c in r.categories}
        unknown = wanted - known
        if unknown:
            raise EraseError(
                f"unknown I2P categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(sorted(unknown))}; the file has: {', '.join(sorted(known))}"
            )
        records = [r for r in records if wanted.intersection(r.categories)]
    if nudity_above is not None:
        if "nudity_percentage" not in columns:
            raise EraseError(f"{str(path)!r} has no 'nudity_percentage' column to filter on")
        records = [
            r
            for r in records
            if r.nudity_percentage is not None and r.nudity_percentage > nudity_above
        ]
    if not records:
        raise EraseError(f"no prompts in {str(path)!r} match the filters")
    return _limit(records, limit)


def load_coco_captions(path: str | os.PathLike, *, limit: int | None = None) -> list[PromptRecord]:
    """COCO-30k/10k caption CSVs (``image_id, source, prompt, evaluation_seed``)."""
    records = load_prompt_csv(path, limit=limit)
    if not records:
        raise EraseError(f"{str(path)!r} holds no captions")
    return records


def load_prompts(source: str | os.PathLike | Iterable[str]) -> list[PromptRecord]:
    """Prompts from a CSV (``prompt`` column), a text file (one a line) or literal text.

    A string that names no existing file is taken as a single prompt; ``|`` separates
    several prompts in one string.
    """
    if not isinstance(source, (str, os.PathLike)):
        prompts = [str(p).strip() for p in source]
        return [PromptRecord(prompt=p, index=i) for i, p in enumerate(p for p in prompts if p)]
    path = Path(source)
    if path.suffix.lower() == ".csv" or path.is_file():
        if path.suffix.lower() == ".csv":
            return load_prompt_csv(path)
        lines = read_text_file(path, "prompt file").splitlines()
        prompts = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not prompts:
            raise EraseError(f"prompt file {str(path)!r} is empty")
        return [PromptRecord(prompt=p, index=i) for i, p in enumerate(prompts)]
    prompts = [p.strip() for p in str(source).split("|") if p.strip()]
    if not prompts:
        raise EraseError("no prompt given")
    return [PromptRecord(prompt=p, index=i) for i, p in enumerate(prompts)]


def read_names(path: str | os.PathLike) -> list[str]:
    """One name a line (UnlearnCanvas style/object lists); blank lines and ``#`` comments skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise EraseError(f"name list {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EraseError(f"cannot read name list {str(path)!r}: {exc}") from None
    names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise EraseError(f"name list {str(path)!r} is empty")
    if len(set(names)) != len(names):
        raise EraseError(f"name list {str(path)!r} repeats a name")
    return names
