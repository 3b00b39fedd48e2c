#!/usr/bin/env python
"""Train the classifier that judges class erasure (ResNet-18 adapted to 32x32) on a data set's training split.

Thin entry point of a checkout: the job lives in ``erase.cli.train_judge`` (also the ``erase-train-judge``
command after ``pip install``, and ``accelerate launch -m erase.cli.train_judge``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.train_judge import main  # noqa: E402

if __name__ == "__main__":
    main()
