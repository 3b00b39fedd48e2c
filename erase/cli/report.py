"""One Markdown report from erasure run dirs and evaluation outputs.

    python eval/report.py OUT_lur OUT_joint --evals outputs/eval/nudity --output_dir REPORT

Collects each run's ``metrics.json`` and ``erase_config.json`` into tables, every evaluation
JSON written by eval/*.py, the run's ``grid.png`` and ``step_log.png`` (or draws the loss and
gradient-cosine curves from ``step_log.json``), and states the evaluation conventions.
Writes ``REPORT/report.md`` and ``REPORT/figures/`` atomically; every figure it names exists.
"""

from __future__ import annotations

import argparse

from erase.errors import cli_main
from erase.helpformat import HelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; ``--help`` prints each with its effective default."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=HelpFormatter)
    p.add_argument("run_dirs", nargs="*", help="erasure run dirs (same as --runs)")
    p.add_argument("--runs", nargs="*", default=[], help="erasure run dirs")
    p.add_argument("--evals", nargs="*", default=[], help="evaluation output dirs")
    p.add_argument("--output_dir", default="outputs/report")
    p.add_argument("--title", default="Erasure report")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def run(args):
    """The job for parsed ``args`` (raises ``EraseError`` on bad input; the API calls this)."""
    from erase.report import build_report

    path = build_report(
        [*args.run_dirs, *args.runs], args.output_dir, eval_dirs=args.evals, title=args.title
    )
    print(f"report -> {path}")
    return path


@cli_main
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
