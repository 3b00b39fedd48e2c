"""``--help`` shows what will happen: every flag's effective default, per method where the
method decides it, and never ``(default: None)``."""

from __future__ import annotations

import argparse
import importlib

import pytest

JOBS = ["erase_concept", "erase_class", "train_class_ddpm", "train_judge", "sample_grid",
        "attack", "report"]  # fmt: skip


def _flags_without_a_stated_default(parser: argparse.ArgumentParser) -> list[str]:
    """Optional flags that take a value, default to None, and whose help does not say what
    None falls back to."""
    missing = []
    for action in parser._actions:
        takes_value = action.nargs != 0 and action.option_strings
        unset = takes_value and not action.required and action.default is None
        if unset and "default" not in (action.help or ""):
            missing.append(action.option_strings[0])
    return missing


@pytest.mark.parametrize("job", JOBS)
def test_help_states_every_default(job, capsys):
    module = importlib.import_module(f"erase.cli.{job}")
    parser = module.build_parser()
    assert _flags_without_a_stated_default(parser) == []
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in text
    assert "--output_dir" in text or job == "sample_grid"


def test_method_dependent_defaults_are_listed_per_method():
    from erase.cli import erase_class, erase_concept

    lines = " ".join(erase_class.build_parser().format_help().split())
    assert "λ (default: the method's: 2.0 for lur, lur-resist; 0.5 for lur-relearn;" in lines
    assert "1.0 for joint, salun, pcgrad; 0.0 for ga, esd)" in lines
    order = (
        "(default: the method's: retain_first for lur; forget_first for lur-relearn, lur-resist)"
    )
    assert order in lines
    assert "(default: the method's: 6 for lur-resist)" in lines
    floor = lines[lines.index("a floor: the rule stops no run") :]
    assert floor[: floor.index(")")].replace("- ", "-").endswith("pcgrad, esd; 300 for lur-resist")
    # the class budget, and the cap when the stopping rule is on
    assert "the step budget (default: 150)" in lines and "(default then: 4 × 150 = 600)" in lines
    lines = " ".join(erase_concept.build_parser().format_help().split())
    assert "3.0 for lur" in lines and "the step budget (default: 100)" in lines
    # the floor under the stopping rule: only lur-resist trains past its target by default
    floor = lines[lines.index("a floor: the rule stops no run") :]
    floor = floor[: floor.index(")")].replace("- ", "-")  # (argparse wraps at hyphens)
    assert floor.endswith("ca-noise; 400 for lur-resist")
    assert "xattn for ca" in lines
