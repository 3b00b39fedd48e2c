"""Every command the README shows is one the project accepts: each is parsed by its own job's
argument parser (the models it names need a GPU and the Hub, so the parse is what runs here;
the jobs themselves run on the embedded world in the other tests)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^(accelerate launch|python) (scripts|eval|benchmarks)/\w+\.py\b")


def readme_commands() -> list[str]:
    """Commands in code blocks and inline code: ``accelerate launch``/``python`` + a file."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        found += [ln.split("#")[0].strip() for ln in joined.splitlines()]
    found += re.findall(r"`([^`\n]+)`", text)
    return sorted({c for c in found if COMMAND.match(c)})


def _parser_module(script: Path):
    """The module whose ``parse_args`` the file runs: the job a thin entry point imports, or
    the file itself."""
    name = "readme_" + "_".join(script.relative_to(ROOT).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(script.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(script.parent))
    if hasattr(module, "parse_args"):
        return module
    return sys.modules[module.main.__module__]


def test_the_readme_shows_the_commands_users_need():
    commands = " ".join(readme_commands())
    for job in ("erase_concept.py", "erase_class.py", "train_class_ddpm.py", "train_judge.py",
                "sample_grid.py", "eval/report.py", "eval/attack.py", "eval/nudity.py"):  # fmt: skip
        assert job in commands, f"the README shows no command for {job}"


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    words = shlex.split(command)
    words = words[2:] if words[0] == "accelerate" else words[1:]  # drop the launcher
    script = ROOT / words[0]
    assert script.exists(), f"{words[0]} does not exist"
    module = _parser_module(script)
    try:
        module.parse_args(words[1:])
    except SystemExit as exc:  # argparse rejected a flag or value the README shows
        pytest.fail(f"`{command}` is rejected by its parser (exit {exc.code})")


def _anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", markdown.read_text(), flags=re.M)}


def test_readme_images_and_links_exist():
    """Every file the README links to exists, and every section it points at (its own or
    another file's, such as the tables a figure comes from) has that heading."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)  # inline links and images
    targets += re.findall(r"^\[[^\]]+\]: (\S+)$", text, flags=re.M)  # reference definitions
    assert "docs/before_after.png" in targets
    for target in targets:
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        assert file.exists(), f"README links to a missing {path}"
        if anchor:
            assert anchor in _anchors(file), f"README links to a missing section {target}"
