#!/usr/bin/env python
"""Sample an audit grid: prompts (or classes) × seeds, models side by side.

Thin entry point of a checkout: the job lives in ``erase.cli.sample_grid`` (also the ``erase-sample-grid`` command after
``pip install``, and ``accelerate launch -m erase.cli.sample_grid``). ``--help`` lists the flags.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erase.cli.sample_grid import main  # noqa: E402

if __name__ == "__main__":
    main()
