"""One Accelerate trainer for every method: same data, same budget, same log.

Determinism and resume: the data, noise and timesteps of step ``s`` come from a generator
seeded with ``(seed, s, micro)`` and are drawn for the *global* batch, each process taking its
slice. So a resumed run sees exactly the batches an uninterrupted one would, and a 2-process
run sees the same global batch as a 1-process run with twice the per-device batch size.

Gradients are all-reduced explicitly after each backward phase (not by DDP's hooks): the
look-ahead of the meta step must use the global forget gradient before the retain forward.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from .errors import EraseError
from .meta_step import MetaConfig, StepContext, joint_gradient, meta_gradient, pcgrad_gradient
from .methods import MethodSpec
from .resist_step import resist_rule
from .robust_step import robust_rule
from .step_rng import step_generator
from .stopping import describe_check


@dataclass
class TrainConfig:
    max_train_steps: int = 200
    learning_rate: float = 1e-4
    train_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_grad_norm: float | None = None
    checkpointing_steps: int = 0
    checkpoints_total_limit: int | None = 2
    resume_from_checkpoint: str | None = None
    seed: int = 0
    monitor_every: int = 10
    saliency_sparsity: float = 0.5
    saliency_batches: int = 4
    validation_steps: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class GradAllReduce:
    """Mean of gradients over processes (a no-op for one process)."""

    def __init__(self, accelerator):
        self.world = accelerator.num_processes

    def __call__(self, grads) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        works = [dist.all_reduce(g, async_op=True) for g in grads]
        for w in works:
            w.wait()
        torch._foreach_div_(list(grads), float(self.world))


def _lr_lambda(kind: str, warmup: int):
    """LR factor. Not ``diffusers.optimization.get_scheduler``: its constant_with_warmup gives
    ``step / warmup`` (lr 0 on the first update), this ``(step + 1) / warmup``, which the
    committed results and checkpoints were made with."""

    def f(step: int) -> float:
        w = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if kind == "constant":
            return 1.0
        if kind == "constant_with_warmup":
            return w
        raise EraseError(
            f"unknown --lr_scheduler {kind!r}; choose constant or constant_with_warmup"
        )

    return f


class NonFiniteError(EraseError):
    pass


class EraseTrainer:
    """Runs ``max_train_steps`` steps of one method on one task; checkpoints and resumes.

    ``task`` provides ``closures(generator, rank, world) -> (forget, retain | None)`` building
    one micro-batch's loss closures, and ``saliency_closure(generator, rank, world)`` (the
    denoising loss on forget data, for SalUn's mask).
    """

    def __init__(
        self,
        accelerator,
        model: torch.nn.Module,
        named_params: dict[str, torch.Tensor],
        task,
        method: MethodSpec,
        meta: MetaConfig,
        cfg: TrainConfig,
        output_dir: str | Path,
        validate: Callable[[int], None] | None = None,
        stopper=None,
    ):
        self.acc = accelerator
        self.model = model
        self.named_params = named_params
        self.params = list(named_params.values())
        self.task = task
        self.method = method
        self.meta = meta
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.validate = validate
        self.stopper = stopper  # erase.stopping.StopMonitor: judge every N steps, stop at a target
        self.stop_reason: str | None = None
        self.log: list[dict] = []
        self.mask: dict[str, torch.Tensor] | None = None
        self.loss_scale = 2.0**14 if accelerator.mixed_precision == "fp16" else 1.0
        self.good_steps = 0
        self.elapsed = 0.0
        opt_kwargs = dict(
            lr=cfg.learning_rate,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            weight_decay=cfg.adam_weight_decay,
            eps=cfg.adam_epsilon,
        )
        if accelerator.device.type == "cuda":
            opt_kwargs["fused"] = True
        else:
            opt_kwargs["foreach"] = True
        self.optimizer = torch.optim.AdamW(self.params, **opt_kwargs)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(cfg.lr_scheduler, cfg.lr_warmup_steps)
        )
        self.ctx = StepContext(
            model=model,
            params=self.params,
            n_micro=cfg.gradient_accumulation_steps,
            reduce_grads=GradAllReduce(accelerator),
            optimizer=self.optimizer,
            names=list(named_params),
        )

    # -- state ------------------------------------------------------------------------------

    def _state(self, step: int) -> dict:
        return {
            "step": step,
            "loss_scale": self.loss_scale,
            "good_steps": self.good_steps,
            "elapsed": self.elapsed,
            "log": self.log,
            "method": self.method.name,
            "meta": self.meta.to_dict(),
            "stopping": self.stopper.state_dict() if self.stopper else None,
            "stop_reason": self.stop_reason,
        }

    def save(self, step: int) -> Path | None:
        path = self.output_dir / f"checkpoint-{step}"
        if self.acc.is_main_process:
            save_checkpoint(
                path,
                params=self.named_params,
                optimizer=self.optimizer,
                lr_scheduler=self.lr_scheduler,
                state=self._state(step),
                mask=self.mask,
                total_limit=self.cfg.checkpoints_total_limit,
            )
        self.acc.wait_for_everyone()
        return path

    def resume(self) -> int:
        path = resolve_checkpoint(self.cfg.resume_from_checkpoint, self.output_dir)
        if path is None:
            if self.cfg.resume_from_checkpoint and self.acc.is_main_process:
                print("no checkpoint to resume from yet; starting a new run")
            return 0
        state, mask = load_checkpoint(
            path, params=self.named_params, optimizer=self.optimizer, lr_scheduler=self.lr_scheduler
        )
        if state.get("method") != self.method.name:
            raise EraseError(
                f"checkpoint {str(path)!r} was written by method {state.get('method')!r}, not "
                f"{self.method.name!r}; resume with the same --method or a new --output_dir"
            )
        self.log = state["log"]
        self.loss_scale = state["loss_scale"]
        self.good_steps = state["good_steps"]
        self.elapsed = state.get("elapsed", 0.0)
        if self.stopper is not None:
            self.stopper.load_state_dict(state.get("stopping"))
            self.stop_reason = state.get("stop_reason")
        if mask is not None:
            self.mask = {k: v.to(self.acc.device) for k, v in mask.items()}
        if self.acc.is_main_process:
            print(f"resumed from {path.name} (step {state['step']})")
        return int(state["step"])

    # -- one step ---------------------------------------------------------------------------

    def _autocast(self, closure):
        def wrapped(model_fn, micro=0):
            with self.acc.autocast():
                return closure(model_fn, micro)

        return wrapped

    def _closures(self, step: int):
        world, rank = self.acc.num_processes, self.acc.process_index
        pairs = [
            self.task.closures(step_generator(self.cfg.seed, step, m), rank, world)
            for m in range(self.cfg.gradient_accumulation_steps)
        ]
        forget = self._autocast(lambda fn, m: pairs[m][0](fn, m))
        retain = None
        if pairs[0][1] is not None:
            retain = self._autocast(lambda fn, m: pairs[m][1](fn, m))
        return forget, retain

    def compute_saliency_mask(self) -> None:
        """SalUn: keep the weights whose forget-gradient magnitude is in the top (1−sparsity)."""
        world, rank = self.acc.num_processes, self.acc.process_index
        closures = [
            self.task.saliency_closure(step_generator(self.cfg.seed, -1, m, salt=7), rank, world)
            for m in range(self.cfg.saliency_batches)
        ]
        ctx = StepContext(
            model=self.model,
            params=self.params,
            n_micro=len(closures),
            reduce_grads=self.ctx.reduce_grads,
        )
        from .meta_step import accumulate_grad

        accumulate_grad(ctx, self._autocast(lambda fn, m: closures[m](fn, m)))
        mags = torch.cat([p.grad.detach().abs().flatten().float() for p in self.params])
        k = max(1, int(round(mags.numel() * self.cfg.saliency_sparsity)))
        threshold = mags.kthvalue(k).values if k < mags.numel() else mags.max()
        self.mask = {n: (p.grad.detach().abs() > threshold) for n, p in self.named_params.items()}
        for p in self.params:
            p.grad = None

    def _rule(self, forget, retain, monitor: bool, step: int = 0) -> dict:
        spec = self.method
        weight = spec.retain_weight
        mask_list = list(self.mask.values()) if self.mask is not None else None
        if retain is None or weight == 0.0:
            return joint_gradient(self.ctx, forget, None, 0.0)
        if spec.rule == "meta":
            meta = self.meta
            if meta.retain_weight != weight:
                meta = MetaConfig(**{**meta.to_dict(), "retain_weight": weight})
            return meta_gradient(self.ctx, forget, retain, meta, monitor=monitor, mask=mask_list)
        if spec.rule in ("meta-relearn", "meta-adv"):
            return robust_rule(self, forget, retain, monitor, mask_list, step)
        if spec.rule == "meta-resist":
            return resist_rule(self, forget, retain, monitor, mask_list, step)
        if spec.rule == "pcgrad":
            return pcgrad_gradient(self.ctx, forget, retain, weight)
        return joint_gradient(self.ctx, forget, retain, weight)

    def _global_losses(self, stats: dict) -> dict:
        """The losses of the global batch (mean over processes), not of this process's share."""
        keys = sorted(k for k in stats if k.startswith("loss"))
        if self.acc.num_processes == 1 or not keys:
            return {}
        import torch.distributed as dist

        t = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=self.acc.device)
        dist.all_reduce(t)
        return dict(zip(keys, (t / self.acc.num_processes).tolist()))

    def _grad_norm(self) -> float:
        norms = torch._foreach_norm([p.grad for p in self.params if p.grad is not None])
        return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0

    def train_step(self, step: int) -> dict:
        forget, retain = self._closures(step)
        monitor = self.cfg.monitor_every > 0 and step % self.cfg.monitor_every == 0
        self.ctx.loss_scale = self.loss_scale
        stats = self._rule(forget, retain, monitor, step)
        stats = {k: v for k, v in stats.items() if not k.startswith("_")}
        stats.update(self._global_losses(stats))
        if self.mask is not None:
            for name, p in self.named_params.items():
                p.grad.mul_(self.mask[name])
        grad_norm = self._grad_norm()
        finite = math.isfinite(grad_norm) and all(
            math.isfinite(v) for k, v in stats.items() if k.startswith("loss")
        )
        if not finite:
            if self.loss_scale > 1.0:
                # fp16: overflow in the scaled backward; skip the step, lower the scale
                self.loss_scale /= 2.0
                self.good_steps = 0
                for p in self.params:
                    p.grad = None
                return {**stats, "skipped": 1.0, "loss_scale": self.loss_scale}
            bad = {k: v for k, v in stats.items() if k.startswith("loss") and not math.isfinite(v)}
            what = ", ".join(f"{k}={v}" for k, v in bad.items()) or f"grad_norm={grad_norm}"
            raise NonFiniteError(f"non-finite value at step {step}: {what}")
        if self.cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        for p in self.params:
            p.grad = None
        if self.loss_scale != 1.0:
            self.good_steps += 1
            if self.good_steps % 1000 == 0:
                self.loss_scale *= 2.0
        stats["grad_norm"] = grad_norm
        stats["lr"] = self.lr_scheduler.get_last_lr()[0]
        return stats

    # -- the loop ---------------------------------------------------------------------------

    def train(self) -> list[dict]:
        start = self.resume()
        if self.method.saliency and self.mask is None:
            self.compute_saliency_mask()
        bar = tqdm(
            total=self.cfg.max_train_steps,
            initial=start,
            desc=f"erasing ({self.method.name})",
            disable=not self.acc.is_local_main_process,
        )
        self.model.train()
        end = start if self.stop_reason is not None else self.cfg.max_train_steps
        for step in range(start, end):
            t0 = time.perf_counter()
            try:
                stats = self.train_step(step)
            except NonFiniteError as exc:
                bar.close()  # end the progress line, so the error line starts a line of its own
                path = self.save(step)
                raise EraseError(
                    f"{exc}; the last good weights are saved in {path}; lower --learning_rate "
                    "or set --max_grad_norm, then resume with --resume_from_checkpoint latest"
                ) from None
            self.elapsed += time.perf_counter() - t0
            stats["step"] = step + 1
            stats["time"] = round(self.elapsed, 4)
            self.log.append(stats)
            if self.acc.is_main_process:
                self.acc.log({k: v for k, v in stats.items() if k != "step"}, step=step + 1)
            post = {
                k: f"{stats[k]:.3g}"
                for k in ("loss_forget", "loss_forget_lookahead", "loss_retain_lookahead", "cos")
                if k in stats
            }
            if self.stopper is not None and self.stopper.checks:  # the last check stays shown
                post["erased"] = f"{self.stopper.checks[-1]['erased']:.2f}"
            bar.set_postfix(post)
            bar.update(1)
            done = step + 1
            # judged before the checkpoint, so a resumed run carries the check and its verdict
            if self.stopper is not None and self.stopper.due(done, self.cfg.max_train_steps):
                self.stop_reason = self.stopper.check(done, self.acc)
                stats["erased_check"] = self.stopper.checks[-1]["erased"]
                bar.set_postfix({**post, "erased": f"{stats['erased_check']:.2f}"})
                if self.acc.is_main_process:  # a line per check, readable in a log file
                    bar.write(f"step {done}: {describe_check(self.stopper.checks[-1])}")
            if self.cfg.checkpointing_steps and done % self.cfg.checkpointing_steps == 0:
                self.save(done)
            if (
                self.validate
                and self.cfg.validation_steps
                and done % self.cfg.validation_steps == 0
            ):
                self.validate(done)
            if self.stop_reason is not None:
                break
        bar.close()
        if self.stopper is not None:
            last = self.log[-1]["step"] if self.log else start
            self.stopper.finish(last, self.stop_reason, self.cfg.max_train_steps)
            if self.acc.is_main_process:
                print(f"stopping rule: {self.stopper.summary()}")
        return self.log
