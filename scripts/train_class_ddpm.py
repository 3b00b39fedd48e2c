#!/usr/bin/env python
"""Pretrain a class-conditional DDPM (UNet2DModel with a null class) on digits, CIFAR-10 or an image folder.

Thin entry point of a checkout: the job lives in ``erase.cli.train_class_ddpm`` (also the ``erase-train-ddpm``
command after ``pip install``, and ``accelerate launch -m erase.cli.train_class_ddpm``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.train_class_ddpm import main  # noqa: E402

if __name__ == "__main__":
    main()
