"""``--help`` that shows what will happen: every flag's effective default.

A flag whose default is ``None`` is resolved later (from the method, the task or the model),
so its help text says what it falls back to; ``(default: None)`` is never printed."""

from __future__ import annotations

import argparse
import copy


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written; ``(default: X)`` after each flag that has a value X."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "default" in text:
            return text
        return super()._get_help_string(action)

    def _format_action(self, action):
        # argparse prints no default for a flag without help text; give it one that does
        plain = action.help is None and action.option_strings and action.nargs != 0
        if plain and action.default is not None and action.default != argparse.SUPPRESS:
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


def per_method(methods: dict, value) -> str:
    """``"0.5 for lur, lur-relearn; 1.0 for joint"``: ``value(spec)`` grouped over a method
    registry, for the help of a flag whose default is the method's."""
    groups: dict[str, list[str]] = {}
    for name, spec in methods.items():
        groups.setdefault(str(value(spec)), []).append(name)
    return "; ".join(f"{v} for {', '.join(names)}" for v, names in groups.items())
