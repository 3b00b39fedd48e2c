"""Fréchet distance between image sets, in any feature space.

Built on torchmetrics' ``FrechetInceptionDistance`` with ``feature=<nn.Module>``, which works
offline. The toy world uses the digits classifier's penultimate layer (a "digits-FID"); real
models use the standard 2048-d Inception-v3 pool features, whose weights are fetched once on a
machine that is online (torch-fidelity's file, in torch hub's cache) or supplied by the user.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import EraseError

# torch-fidelity's Inception-v3 weights (the "FID Inception" of Heusel et al., ported).
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_ENV = "ERASE_INCEPTION_WEIGHTS"


class FeatureExtractor(nn.Module):
    """Wraps ``fn: images -> [N, D]`` as the module torchmetrics expects (``num_features`` set,
    so torchmetrics does not probe it with a 299×299 dummy image)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor] | nn.Module, num_features: int):
        super().__init__()
        self.fn = fn  # registered as a submodule when it is one
        self.num_features = int(num_features)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.fn(x)
        return feats.reshape(feats.shape[0], -1).float()

    def train(self, mode: bool = True):  # never leaves eval mode (no dropout in features)
        return super().train(False)


def as_feature_extractor(feature_extractor, probe: torch.Tensor | None = None) -> nn.Module:
    """Accept a ready module (with ``num_features``), an object with ``.features`` (e.g. the
    digits classifier) or any callable; infer the dimension from ``probe`` if needed."""
    if isinstance(feature_extractor, nn.Module) and hasattr(feature_extractor, "num_features"):
        return feature_extractor
    fn = getattr(feature_extractor, "features", feature_extractor)
    if isinstance(feature_extractor, nn.Module):
        feature_extractor.eval()
    dim = getattr(feature_extractor, "feature_dim", None)
    if dim is None:
        if probe is None:
            raise EraseError(
                "cannot tell the feature dimension; give the extractor a num_features attribute"
            )
        with torch.no_grad():
            dim = fn(probe[:2]).reshape(min(2, len(probe)), -1).shape[-1]
    wrapper = FeatureExtractor(fn, dim)
    if isinstance(feature_extractor, nn.Module) and fn is not feature_extractor:
        wrapper.owner = feature_extractor  # keep .to(device) moving the whole model
    return wrapper


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def fid_from_images(
    real: torch.Tensor,
    fake: torch.Tensor,
    feature_extractor,
    batch_size: int = 512,
) -> float:
    """Fréchet distance between ``real`` and ``fake`` in ``feature_extractor``'s space.

    The images go to the extractor as they are (same range and shape as it was trained on).
    Both sets need at least 2 images; with fewer images than feature dimensions the covariance is
    rank-deficient and the value is biased upward — compare numbers computed with equal set sizes.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        raise EraseError(
            f"FID needs at least 2 images in each set, got {len(real)} real and {len(fake)} fake"
        )
    extractor = as_feature_extractor(feature_extractor, probe=real)
    device = _device_of(extractor)
    metric = FrechetInceptionDistance(feature=extractor, reset_real_features=True).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            metric.update(images[i : i + batch_size].to(device), real=is_real)
    return float(metric.compute())


# -- the standard 2048-d Inception FID ------------------------------------------------------------


def _find_inception_weights(weights_path: str | os.PathLike | None) -> Path | None:
    candidates = []
    if weights_path:
        candidates.append(Path(weights_path))
    if os.environ.get(INCEPTION_WEIGHTS_ENV):
        candidates.append(Path(os.environ[INCEPTION_WEIGHTS_ENV]))
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE)
    for c in candidates:
        if c.is_file():
            return c
    if weights_path:
        raise EraseError(
            f"Inception weights not found at {str(weights_path)!r}; pass the path of "
            f"torch-fidelity's {INCEPTION_WEIGHTS_FILE}"
        )
    return None


class InceptionImages(nn.Module):
    """Maps images in [-1, 1] (1 or 3 channels, any size) to uint8 RGB for the Inception net."""

    def __init__(self, inception: nn.Module):
        super().__init__()
        self.inception = inception
        self.num_features = 2048

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.inception(x)

    def train(self, mode: bool = True):
        return super().train(False)


INCEPTION_HASH_PREFIX = "6726825d"  # sha256 prefix, as in the file name (torch hub's convention)
OFFLINE_ENV = ("ERASE_OFFLINE", "HF_HUB_OFFLINE")


def _offline() -> str | None:
    for name in OFFLINE_ENV:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def inception_weights_cache() -> Path:
    """Where torchmetrics' ``FrechetInceptionDistance(feature=2048)`` (through torch-fidelity)
    keeps the weights: torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def fetch_inception_weights(timeout: float = 60.0) -> Path:
    """The FID Inception weights, downloaded once from torch-fidelity's release (the file and
    place torchmetrics uses) and checked against their hash. Raises one clear EraseError when the
    machine is offline (``$ERASE_OFFLINE`` / ``$HF_HUB_OFFLINE`` set, or no connection)."""
    import socket

    dst = inception_weights_cache()
    if dst.is_file():
        return dst
    how = (
        f"on a machine that is online they download once to {str(dst.parent)!r}; or set "
        f"${INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILE}"
    )
    flag = _offline()
    if flag:
        raise EraseError(
            f"Inception FID weights ({INCEPTION_WEIGHTS_FILE}) are not available: ${flag} is set; "
            + how
        )
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    dst.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:  # writes a temporary file and renames it into place: never a half file at dst
        torch.hub.download_url_to_file(
            URL_INCEPTION_V3, str(dst), hash_prefix=INCEPTION_HASH_PREFIX, progress=False
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise EraseError(
            f"Inception FID weights ({INCEPTION_WEIGHTS_FILE}) are not available offline and the "
            f"download failed ({type(exc).__name__}: {reason}); " + how
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return dst


class _WeightsOnlyLoads:
    """torch-fidelity reads its weights with ``torch.load(weights_only=False)``; torch's
    ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` turns that into a weights-only (no code) load."""

    def __enter__(self):
        self.old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = self.old


def inception_feature_extractor(
    weights_path: str | os.PathLike | None = None, download: bool = True
) -> nn.Module:
    """The standard FID feature extractor (Inception-v3 pool3, 2048-d).

    Looks in ``weights_path``, ``$ERASE_INCEPTION_WEIGHTS`` and torch hub's checkpoint folder;
    if absent and ``download``, fetches them once (:func:`fetch_inception_weights`). Raises
    EraseError with the fix when torch-fidelity or the weights are absent.
    """
    try:
        import torch_fidelity  # noqa: F401
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise EraseError(
            "the 2048-d Inception FID needs torch-fidelity; pip install torch-fidelity "
            f"and place {INCEPTION_WEIGHTS_FILE} in $TORCH_HOME/hub/checkpoints or set "
            f"${INCEPTION_WEIGHTS_ENV}"
        ) from None
    path = _find_inception_weights(weights_path)
    if path is None and download:
        path = fetch_inception_weights()
    if path is None:
        raise EraseError(
            f"Inception FID weights ({INCEPTION_WEIGHTS_FILE}) are not available offline; download "
            "them from torch-fidelity's GitHub releases and set "
            f"${INCEPTION_WEIGHTS_ENV}=/path/to/{INCEPTION_WEIGHTS_FILE} (or put the file in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'})"
        )
    try:
        with _WeightsOnlyLoads():
            net = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=["2048"],
                feature_extractor_weights_path=str(path),
            )
    except Exception as exc:  # not a plain state dict (refused unexecuted), or other weights
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise EraseError(
            f"cannot load Inception weights {str(path)!r} ({type(exc).__name__}: {first}); "
            f"use torch-fidelity's {INCEPTION_WEIGHTS_FILE}"
        ) from None
    return InceptionImages(net)


def inception_fid_from_images(
    real: torch.Tensor, fake: torch.Tensor, weights_path: str | os.PathLike | None = None
) -> float:
    """Standard 2048-d Inception FID between two image sets in [-1, 1] (or uint8)."""
    return fid_from_images(real, fake, inception_feature_extractor(weights_path), batch_size=64)
