"""erase: concept erasure for diffusion models with the retain-after-forget meta-gradient."""

__version__ = "0.1.0"
