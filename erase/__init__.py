"""erase: concept erasure for diffusion models with the meta-gradient of Learning to Unlearn while
Retaining (by default the look-ahead is a retain step and forgetting is judged after it).

``erase.erase_concept(...)``, ``erase.erase_class(...)`` and ``erase.write_report(...)`` run the same
jobs as the ``erase-concept``, ``erase-class`` and ``erase-report`` commands (see
:mod:`erase.api`); they are imported lazily, so ``import erase`` stays cheap.
"""

__version__ = "0.1.0"

_API = ("erase_concept", "erase_class", "write_report", "ErasureResult")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "EraseError":
        from .errors import EraseError

        return EraseError
    raise AttributeError(f"module 'erase' has no attribute {name!r}")


__all__ = [*_API, "EraseError"]
