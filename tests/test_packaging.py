"""A wheel built from the checkout carries the package whole: every file of erase/ and, under
erase/prompts, every file of the top-level prompts/ folder (mapped into the package by
pyproject.toml, so the repository keeps one copy); and the concept loader finds a named concept
in the unpacked wheel, away from any checkout. The build runs offline, with the setuptools the
dev extra installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "erase", "prompts")


def _files(folder: Path) -> list[Path]:
    """Its files, less caches and hidden ones (the assets' ``.complete`` markers, which
    package-data globs skip and nothing reads from an installed package)."""
    return [
        p for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    ]  # fmt: skip


def test_wheel_carries_the_prompts_and_resolves_a_named_concept(tmp_path):
    src = tmp_path / "src"  # a copy, so the build's scratch folders stay out of the checkout
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dist.glob("erase-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    prompts = _files(ROOT / "prompts")
    assert any(p.parent.name == "concepts" for p in prompts)
    for p in prompts:
        assert f"erase/prompts/{p.relative_to(ROOT / 'prompts').as_posix()}" in names, p
    for p in _files(ROOT / "erase"):
        assert p.relative_to(ROOT).as_posix() in names, f"the wheel lacks {p.relative_to(ROOT)}"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import erase; from erase.concepts import concepts_dir, resolve_concept; "
        "print(erase.__file__); print(concepts_dir()); print(resolve_concept('nudity').forget[0])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(site)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, folder, prompt = proc.stdout.splitlines()
    assert Path(module).is_relative_to(site), "the probe imported erase from outside the wheel"
    assert Path(folder) == site / "erase" / "prompts" / "concepts"
    nudity = (ROOT / "prompts" / "concepts" / "nudity.txt").read_text()
    assert prompt and prompt in nudity
