#!/usr/bin/env python
"""Try to bring an erased concept back (prompt attacks, relearning) and report the ASR.

Thin entry point of a checkout: the job lives in ``erase.cli.attack`` (also the ``erase-attack`` command after
``pip install``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.attack import main  # noqa: E402

if __name__ == "__main__":
    main()
