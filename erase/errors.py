"""User-facing errors: one line that names the problem and the fix, never a deep traceback."""

from __future__ import annotations

import functools
import sys


class EraseError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


def cli_main(fn):
    """Wrap a script's ``main`` so an ``EraseError`` prints one ``error:`` line and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EraseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return wrapper
