"""The phases both erasure jobs share, so a change to how a run trains or records itself is
made once: the accelerator and its precision, the trainer run, and the records every run
writes (``erase_config.json``, the step log, the ``COMPLETE`` marker)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


def weight_dtype_of(accelerator):
    """The dtype of the frozen copies and encoders under the accelerator's mixed precision."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32
    )


def start_trackers(accelerator, args, project: str, config: dict) -> None:
    """``--report_to``: open the tracker on the main process with the run's config."""
    if accelerator.is_main_process and args.report_to:
        accelerator.init_trackers(project, config={k: str(v) for k, v in config.items()})


@dataclass
class TrainResult:
    """What a job records of its training: the step log, the trainer's own step time
    (``erasure_seconds``) and the wall time of the whole phase."""

    log: list[dict]
    elapsed: float
    wall_seconds: float
    stopping: dict | None = None  # erase.stopping.StopMonitor.stopped: why the run ended

    def stopping_record(self) -> dict:
        """``trained_steps`` and ``stopping`` for erase_config.json, metrics.json, the card."""
        return {
            "trained_steps": self.log[-1]["step"] if self.log else 0,
            "stopping": self.stopping or "off (a fixed step budget)",
        }


def train(
    accelerator, model, named, task, method, meta, train_cfg, out: Path, **trainer_kwargs
) -> TrainResult:
    """Run ``EraseTrainer`` (``trainer_kwargs``: e.g. ``validate``) and wait for every process."""
    from .trainer import EraseTrainer

    t0 = time.perf_counter()
    trainer = EraseTrainer(
        accelerator, model, named, task, method, meta, train_cfg, out, **trainer_kwargs
    )
    trainer.train()
    wall = time.perf_counter() - t0
    accelerator.wait_for_everyone()
    stopper = trainer.stopper
    return TrainResult(trainer.log, trainer.elapsed, wall, stopper.stopped if stopper else None)


def stop_unless_main(accelerator) -> bool:
    """End a non-main process after training (only the main one saves and evaluates);
    True when this process stopped."""
    if accelerator.is_main_process:
        return False
    accelerator.end_training()
    return True


def save_run_records(out: Path, config: dict, log: list[dict], title: str) -> None:
    """``erase_config.json`` and ``step_log.{json,png}``."""
    from .io import atomic_write_json
    from .steplog import save_step_log

    atomic_write_json(out / "erase_config.json", config)
    save_step_log(log, out, title=title)


def mark_complete(accelerator, out: Path) -> None:
    """The last write of a run: the marker that says every output is in place."""
    from .io import COMPLETE_MARKER, atomic_write_text

    atomic_write_text(out / COMPLETE_MARKER, "")
    accelerator.end_training()
