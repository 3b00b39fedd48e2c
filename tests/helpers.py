"""Launching the project's CLIs as users do (subprocesses) and reading what they wrote.

Every launch gets a clean, offline, single-threaded environment: on 2 shared cores torch's
default of one thread per core makes tiny models an order of magnitude slower, and nothing
here may touch the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]

# the tiny runs the reliability tests compare (see conftest.py for the models)
CLASS_ARGS = [
    "--forget_class",
    "3",
    "--train_batch_size",
    "4",
    "--no_eval",
    "--monitor_every",
    "2",
]
CONCEPT_ARGS = [
    "--concept",
    "three",
    "--train_batch_size",
    "2",
    "--no_eval",
    "--images_per_prompt",
    "2",
    "--retain_images_per_prompt",
    "1",
    "--gen_steps",
    "3",
    "--validation_prompts",
    "a handwritten digit three",
    "--monitor_every",
    "2",
]


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]

    def tail(self, n: int = 3000) -> str:
        return (
            f"rc={self.rc}\n--- stdout ---\n{self.stdout[-n:]}\n--- stderr ---\n{self.stderr[-n:]}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(extra: dict | None = None, home: Path | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TQDM_DISABLE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONWARNINGS="ignore",
    )
    if home is not None:  # isolates accelerate's default config and the hub cache
        env["HF_HOME"] = str(home)
    for k in ("ACCELERATE_USE_CPU", "ERASE_TEST_SAVE_PAUSE"):
        env.pop(k, None)
    env.update(extra or {})
    return env


def command(
    script: str, args: list, *, launcher: str = "python", num_processes: int = 1
) -> list[str]:
    """The command line: ``python script`` or ``accelerate launch [--multi_gpu] script``."""
    args = [str(a) for a in args]
    if launcher == "python":
        return [sys.executable, str(REPO / script), *args]
    launch = [*ACCELERATE, "--quiet", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", str(free_port())]
    if num_processes > 1:
        launch += ["--multi_gpu", "--num_processes", str(num_processes)]
    else:
        launch += ["--cpu", "--num_processes", "1"]
    return [*launch, str(REPO / script), *args]


def run_cli(
    script: str,
    args: list,
    env: dict | None = None,
    *,
    launcher: str = "python",
    num_processes: int = 1,
    timeout: float = 600,
) -> Result:
    """Run a CLI to the end; returns its exit code and output."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        command(script, args, launcher=launcher, num_processes=num_processes),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env if env is not None else cli_env(),
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)


def start_cli(script: str, args: list, env: dict | None, log: Path) -> subprocess.Popen:
    """Start a CLI in the background in its own process group (so a kill reaches every child)."""
    fh = open(log, "w")  # noqa: SIM115 - closed by the caller through proc.stdout
    return subprocess.Popen(
        command(script, args),
        stdout=fh,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=env if env is not None else cli_env(),
        start_new_session=True,
    )


def assert_ok(res: Result) -> None:
    assert res.rc == 0, res.tail()
    assert "Traceback" not in res.stderr, res.tail()


def assert_clean_error(res: Result, keyword: str) -> None:
    """Exit code != 0, exactly one ``error:`` line naming the problem, no traceback."""
    assert res.rc != 0, res.tail()
    assert "Traceback" not in res.stderr, res.tail()
    lines = res.error_lines()
    assert len(lines) == 1, res.tail()
    assert keyword.lower() in lines[0].lower(), res.tail()


def load_weights(folder: Path) -> dict:
    """The UNet weights a run saved (``unet/diffusion_pytorch_model.safetensors``)."""
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "unet" / "diffusion_pytorch_model.safetensors"))


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def assert_bit_identical(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, (
        f"{len(differ)} tensors differ, e.g. {differ[:3]}: max |Δ| {max_abs_diff(a, b)}"
    )


def assert_same_pixels(a, b, levels: int = 1) -> None:
    """Two [-1, 1] image batches decode to the same 8-bit images within ``levels`` steps.

    For images computed with different batch shapes: a batch-size change changes how the CPU
    kernels block their reductions (GEMM, convolution), so each value carries float32 rounding
    of a different order, ~eps (6e-8) x reduction length x magnitude per layer, compounded over
    the network's depth and the sampler's steps (1e-4 to 1e-3 measured on the embedded models,
    depending on the CPU's kernels). What a user sees is the saved 8-bit image; a difference
    far below one step (1/127.5 = 7.8e-3) moves a pixel by one level only where the value sits
    next to a rounding boundary, hence ``levels = 1`` and the float bound of half a step.
    """
    import torch

    def to_u8(x):
        return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.int16)

    assert a.shape == b.shape, (a.shape, b.shape)
    float_diff = float((a.float() - b.float()).abs().max())
    assert float_diff < 0.5 / 127.5, f"max |Δ| {float_diff} is half an 8-bit step or more"
    level_diff = int((to_u8(a) - to_u8(b)).abs().max())
    assert level_diff <= levels, f"8-bit images differ by {level_diff} levels"


def run_benchmark_smoke(name: str, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python benchmarks/NAME.py --smoke ARGS`` as a user launches it; it must exit 0
    without a traceback."""
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--smoke", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(),
        timeout=timeout,
    )
    assert res.returncode == 0, (
        f"{name}.py --smoke failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    )
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res


# -- small models for the gradient rules' mathematics (meta, robust and resist steps) ----------


def step_context(model):
    """The ``StepContext`` of a small model: every parameter trainable, one micro-batch."""
    from erase.meta_step import StepContext

    return StepContext(model=model, params=list(model.parameters()))


def flat_grad(model):
    """Every parameter's ``.grad``, flattened into one vector."""
    import torch

    return torch.cat([p.grad.flatten() for p in model.parameters()])


def mse_closures(xf, yf, xr, yr):
    """Forget and retain loss closures ``(model_fn, micro) -> MSE`` on fixed data."""

    def forget(model_fn, micro):
        return (model_fn(xf) - yf).pow(2).mean()

    def retain(model_fn, micro):
        return (model_fn(xr) - yr).pow(2).mean()

    return forget, retain
