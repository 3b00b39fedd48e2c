#!/usr/bin/env python
"""Startup cost: ``--help`` of every command, and the time from the command to the first
training step on the embedded world, with an import-time breakdown.

    python benchmarks/startup.py --output startup.json

Each measurement is a fresh ``python SCRIPT ...`` process (one torch thread, offline), timed
from just before the launch. The first step is timed inside the launched job: a wrapper runs
the script as ``python SCRIPT`` would (``runpy``) and notes the clock when
``EraseTrainer.train_step`` is entered for the first time and when it returns. The import
breakdown is ``python -X importtime`` of the same launch: the self time of every module,
summed per top-level package (``torch``, ``diffusers``, ``erase``, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _scripts import SMOKE_HELP, machine_record  # noqa: E402

CLIS = [
    "scripts/erase_concept.py",
    "scripts/erase_class.py",
    "scripts/sample_grid.py",
    "eval/report.py",
    "eval/clipscore.py",
    "eval/fid.py",
    "eval/nudity.py",
    "eval/unlearncanvas.py",
]
# The jobs' first step on the embedded world: defaults, except one step and no evaluation.
# erase_concept generates its training latents with the original model before the first step
# (the job's data, not startup; cached in --cache_dir): the second row reruns it on that cache.
JOBS = {
    "erase_class": ["scripts/erase_class.py", "--forget_class", "7"],
    "erase_concept": ["scripts/erase_concept.py", "--concept", "three", "--cache_dir", "{tmp}"],
    "erase_concept_cached": [
        "scripts/erase_concept.py",
        "--concept",
        "three",
        "--cache_dir",
        "{tmp}",
    ],
}
JOB_FLAGS = ["--max_train_steps", "1", "--no_eval", "--overwrite"]

# Runs SCRIPT (argv[1]) as `python SCRIPT ARGS` does and writes the clock at the start and the
# end of the first training step to $ERASE_STARTUP_FILE.
FIRST_STEP = r"""
import json, os, runpy, sys, time
from erase.trainer import EraseTrainer
_step, _seen = EraseTrainer.train_step, []
def train_step(self, step):
    t0, cpu0 = time.time(), time.process_time()
    out = _step(self, step)
    if not _seen:
        _seen.append(1)
        marks = {"step_start": t0, "step_end": time.time(), "cpu_to_step_start": cpu0}
        with open(os.environ["ERASE_STARTUP_FILE"], "w") as fh:
            json.dump(marks, fh)
    return out
EraseTrainer.train_step = train_step
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _env(extra=None) -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TQDM_DISABLE="1",
        PYTHONWARNINGS="ignore",
    )
    env.update(extra or {})
    return env


def _run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return time.time() - t0, res


def import_breakdown(stderr: str, top: int = 12) -> dict[str, float]:
    """Seconds per top-level package from ``-X importtime`` output (the self time of each of
    its modules, summed), largest first."""
    per_pkg: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        per_pkg[parts[2].strip().split(".")[0]] += int(parts[0]) / 1e6
    ranked = sorted(per_pkg.items(), key=lambda kv: -kv[1])
    return {k: round(v, 3) for k, v in ranked[:top]}


def measure_help(script: str, repeats: int) -> dict:
    env = _env()
    times = [_run([sys.executable, script, "--help"], env)[0] for _ in range(repeats)]
    _, res = _run([sys.executable, "-X", "importtime", script, "--help"], env)
    return {
        "seconds": round(statistics.median(times), 3),
        "imports_s": import_breakdown(res.stderr),
    }


def measure_first_step(job: str, out: Path, breakdown: bool, extra=()) -> dict:
    script, *flags = (a.replace("{tmp}", str(out / "latent_cache")) for a in JOBS[job])
    marks = out / f"{job}-first-step.json"
    env = _env({"ERASE_STARTUP_FILE": str(marks)})
    cmd = [sys.executable, "-c", FIRST_STEP, script, *flags, *JOB_FLAGS, *extra]
    cmd += ["--output_dir", str(out / job)]
    t0 = time.time()
    total, _ = _run(cmd, env)
    m = json.loads(marks.read_text())
    row = {
        "to_first_step_s": round(m["step_start"] - t0, 3),
        "to_first_step_end_s": round(m["step_end"] - t0, 3),
        "first_step_s": round(m["step_end"] - m["step_start"], 3),
        # the process's own CPU time (one thread) up to the first step: on a shared machine
        # the wall times above include waiting for a core, this does not
        "cpu_to_first_step_s": round(m["cpu_to_step_start"], 3),
        "whole_command_s": round(total, 3),
    }
    if breakdown:
        cmd = [sys.executable, "-X", "importtime", *cmd[1:]]
        _, res = _run(cmd[:-1] + [str(out / f"{job}-importtime")], env)
        row["imports_s"] = import_breakdown(res.stderr)
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--clis", nargs="+", default=CLIS, help="commands whose --help is timed")
    p.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    p.add_argument("--repeats", type=int, default=3, help="--help launches per command")
    p.add_argument("--smoke", action="store_true", help=SMOKE_HELP + " (one command, one job)")
    args = p.parse_args(argv)
    # a smoke run samples with 2 steps: the first run's anchor verdict (one sampled fixed point,
    # part of a real first startup) then takes a second, not a minute
    args.job_flags = ["--num_inference_steps", "2"] if args.smoke else []
    if args.smoke:
        args.clis, args.jobs, args.repeats = ["scripts/erase_class.py"], ["erase_class"], 1
    if "erase_concept_cached" in args.jobs and "erase_concept" not in args.jobs:
        args.jobs.insert(args.jobs.index("erase_concept_cached"), "erase_concept")  # fills it
    return args


def main(argv=None):
    args = parse_args(argv)
    results: dict = {"help": {}, "first_step": {}}
    for script in args.clis:
        results["help"][script] = r = measure_help(script, args.repeats)
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(r["imports_s"].items())[:4])
        print(f"{script} --help: {r['seconds']:.2f} s (imports: {top})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs:
            breakdown = not args.smoke  # a second launch
            extra = args.job_flags if job == "erase_class" else []
            results["first_step"][job] = r = measure_first_step(job, Path(tmp), breakdown, extra)
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(r.get("imports_s", {}).items())[:5])
            print(
                f"{job}: command -> first step {r['to_first_step_s']:.2f} s "
                f"({r['cpu_to_first_step_s']:.2f} s CPU), first step "
                f"{r['first_step_s']:.2f} s, whole command {r['whole_command_s']:.2f} s "
                f"(imports: {top})",
                flush=True,
            )
    payload = {**machine_record("startup.py"), "cpu_count": os.cpu_count(), **results}
    if args.output:
        Path(args.output).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.output}")
    return payload


if __name__ == "__main__":
    main()
