#!/usr/bin/env python
"""Erase classes from a class-conditional diffusion model (UNet2DModel).

Thin entry point of a checkout: the job lives in ``erase.cli.erase_class`` (also the ``erase-class`` command after
``pip install``, and ``accelerate launch -m erase.cli.erase_class``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.erase_class import main  # noqa: E402

if __name__ == "__main__":
    main()
