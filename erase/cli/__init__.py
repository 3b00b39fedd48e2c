"""The command-line jobs, as importable modules.

Each module has ``parse_args(argv)`` and ``main(argv)``; they are reached as console commands
after ``pip install`` (``erase-concept``, ``erase-class``, ``erase-sample-grid``,
``erase-report``), as ``accelerate launch -m erase.cli.erase_concept ...``, and through the thin
files in ``scripts/`` and ``eval/`` of a checkout.
"""
