#!/usr/bin/env python
"""Erase a concept from a Stable Diffusion (1.x, 2.x, XL) pipeline.

Thin entry point of a checkout: the job lives in ``erase.cli.erase_concept`` (also the ``erase-concept`` command after
``pip install``, and ``accelerate launch -m erase.cli.erase_concept``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.erase_concept import main  # noqa: E402

if __name__ == "__main__":
    main()
