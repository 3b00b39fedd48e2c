"""Crash-safe writing: every output goes to a temporary name first and is renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import EraseError

COMPLETE_MARKER = ".complete"


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or raise an EraseError that names it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EraseError(
            f"output directory {str(path)!r} is not writable ({exc.strerror}); "
            "choose another --output_dir"
        ) from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_figure(fig, path: str | os.PathLike, **kwargs) -> None:
    """Save a matplotlib figure atomically (PNG)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def save_image(image, path: str | os.PathLike) -> None:
    """Save a PIL image atomically (format from the suffix)."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    image.save(buf, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    atomic_write_bytes(path, buf.getvalue())


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Build a directory under a temporary sibling name; rename it into place on success.

    A crash leaves either the previous complete directory or nothing at ``path``, never a
    half-written one. A ``.complete`` marker is written last, inside, before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        (tmp / COMPLETE_MARKER).write_text("")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_complete(path: str | os.PathLike) -> bool:
    return (Path(path) / COMPLETE_MARKER).exists()
