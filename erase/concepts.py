"""Concept specs: which prompts to forget, what to map them to, and what must not change.

A concept file (``prompts/concepts/<name>.txt``) is plain text a user can edit::

    # comments start with '#'
    [forget]
    a photo of a naked person
    [anchor]
    a photo of a person wearing clothes
    [retain]
    a photo of a person walking a dog

``[anchor]`` holds one prompt (used for every forget prompt) or one per forget prompt; it may
be empty (``esd`` needs none). ``--concept`` takes such a name, a path to such a file, or
free text (which must contain a space, so that a mistyped name is caught, not erased).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EraseError
from .validate import read_text_file

SECTIONS = ("forget", "anchor", "retain")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DEFAULT_RETAIN = [
    "a photo of a person",
    "a landscape with mountains and a lake",
    "a photo of a dog",
    "a city street at night",
    "a bowl of fruit on a table",
]


@dataclass
class Concept:
    name: str
    forget: list[str]
    anchor: list[str] = field(default_factory=list)
    retain: list[str] = field(default_factory=list)
    source: str = ""

    def anchor_for(self, i: int) -> str:
        if not self.anchor:
            return ""
        return self.anchor[i] if len(self.anchor) == len(self.forget) else self.anchor[0]


def concepts_dir() -> Path:
    """The project's concept files: ``erase/prompts/concepts`` in an installed wheel, where
    packaging maps the checkout's top-level ``prompts/`` (one copy, edited there); that folder
    itself in a checkout or an editable install."""
    package = Path(__file__).resolve().parent
    for root in (package, package.parent):
        folder = root / "prompts" / "concepts"
        if folder.is_dir():
            return folder
    return package / "prompts" / "concepts"


def known_concepts() -> list[str]:
    d = concepts_dir()
    return sorted(p.stem for p in d.glob("*.txt")) if d.is_dir() else []


def parse_concept_file(path: Path, name: str | None = None) -> Concept:
    if not path.is_file():
        raise EraseError(f"concept file {str(path)!r} not found")
    sections: dict[str, list[str]] = {s: [] for s in SECTIONS}
    current = None
    for n, raw in enumerate(read_text_file(path, "concept file").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            if m.group(1) not in SECTIONS:
                raise EraseError(f"{path}:{n}: unknown section [{m.group(1)}]; use {SECTIONS}")
            current = m.group(1)
            continue
        if current is None:
            raise EraseError(f"{path}:{n}: prompt outside a section; start with [forget]")
        sections[current].append(line)
    if not sections["forget"]:
        raise EraseError(f"concept file {str(path)!r} has no [forget] prompts")
    c = Concept(
        name or path.stem, sections["forget"], sections["anchor"], sections["retain"], str(path)
    )
    if c.anchor and len(c.anchor) not in (1, len(c.forget)):
        raise EraseError(
            f"{path}: [anchor] needs 1 prompt or one per forget prompt "
            f"({len(c.forget)}), found {len(c.anchor)}"
        )
    return c


def read_prompt_file(path: str | Path, what: str) -> list[str]:
    """One prompt per line ('#' comments); a missing or empty file is a clear error."""
    p = Path(path)
    if not p.is_file():
        raise EraseError(f"{what} file {str(path)!r} not found")
    lines = [ln.strip() for ln in read_text_file(p, f"{what} file").splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise EraseError(f"{what} file {str(path)!r} has no prompts (one prompt per line)")
    return prompts


def resolve_concept(spec: str) -> Concept:
    """A concept name, a concept file path, or free text (with a space)."""
    spec = spec.strip()
    if not spec:
        raise EraseError("--concept is empty")
    path = Path(spec)
    if path.suffix == ".txt" and path.is_file():
        return parse_concept_file(path)
    named = concepts_dir() / f"{spec.lower()}.txt"
    if NAME_RE.match(spec):
        if named.is_file():
            return parse_concept_file(named, spec.lower())
        raise EraseError(
            f"unknown concept {spec!r}; known: {', '.join(known_concepts())}; free text needs "
            "a space (e.g. --concept 'a red car'), or pass a concept file"
        )
    return Concept(spec, [spec], [], [], "free text")


def merge_concepts(concepts: list[Concept]) -> Concept:
    """Several concepts erased in one run: forget all, retain what none of them forgets."""
    forget, anchor = [], []
    for c in concepts:
        for i, p in enumerate(c.forget):
            forget.append(p)
            anchor.append(c.anchor_for(i))
    forget_set = set(forget)
    retain = []
    for c in concepts:
        retain += [r for r in c.retain if r not in forget_set and r not in retain]
    if not any(anchor):
        anchor = []
    return Concept(
        "+".join(c.name for c in concepts),
        forget,
        anchor,
        retain,
        "; ".join(c.source for c in concepts),
    )
