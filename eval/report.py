#!/usr/bin/env python
"""One Markdown report from erasure run dirs and evaluation outputs.

Thin entry point of a checkout: the job lives in ``erase.cli.report`` (also the ``erase-report`` command after
``pip install``, and ``accelerate launch -m erase.cli.report``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.report import main  # noqa: E402

if __name__ == "__main__":
    main()
