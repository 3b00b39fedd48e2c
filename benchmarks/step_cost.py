#!/usr/bin/env python
"""Cost of one training step of every erasure method: time and peak memory, side by side.

    python benchmarks/step_cost.py --output step_cost.json

Every method runs the real ``EraseTrainer.train_step`` (task closures, frozen targets,
gradient rule, AdamW step). Methods are interleaved round-robin after a warm-up, so that the
noise of a shared machine hits all of them alike, and the median is reported. Peak memory is
the bytes a step allocates on top of what persists between steps (weights, frozen original,
optimizer state, masks), which persists is added back for the total. CPU: counted from live
tensor storages (torch keeps no CPU allocator statistics); CUDA: ``max_memory_allocated``.
The last lines give lur/joint and lur-resist/lur ratios of time and memory for each model.

Worlds: (a) the embedded class DDPM and tiny SD on CPU; (b) the Stable Diffusion 1.5 UNet
architecture (random weights, 64×64 latents, bf16 autocast, batch 1 and 4) on CUDA only.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # also when a test loads this file by path

from _scripts import machine_record  # noqa: E402

SD15_CONFIG = HERE / "sd15_unet_config.json"


class BenchAccelerator:
    """What ``EraseTrainer`` uses of ``accelerate.Accelerator``, for one process.

    A shim rather than Accelerate: one process runs CPU fp32 worlds next to a CUDA bf16 one,
    and Accelerate's state is a process-wide singleton. Autocast is what Accelerate does.
    """

    num_processes = 1
    process_index = 0
    is_main_process = True
    is_local_main_process = True

    def __init__(self, device: torch.device, mixed_precision: str = "no"):
        self.device = torch.device(device)
        self.mixed_precision = mixed_precision

    def autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mixed_precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def wait_for_everyone(self) -> None:
        pass

    def log(self, *args, **kwargs) -> None:
        pass


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage allocated inside the mode and still alive; ``peak`` is their max.

    Device-independent (works on CPU, where torch keeps no allocator statistics): every op's
    outputs are inspected, storages that alias an input (views, in-place ops) are ignored and a
    finalizer subtracts a storage's bytes when it is freed. Storages that existed before the
    mode (parameters, optimizer state) are not counted, so ``peak`` is the step's extra memory.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            a.untyped_storage().data_ptr()
            for a in tree_flatten((args, kwargs))[0]
            if isinstance(a, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            s = t.untyped_storage()
            key, n = s.data_ptr(), s.nbytes()
            if n == 0 or key in inputs or key in self._sizes:
                continue
            self._sizes[key] = n
            self.live += n
            self.peak = max(self.peak, self.live)
            weakref.finalize(s, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)


def tensor_bytes(tensors) -> int:
    """Bytes of distinct storages among ``tensors``."""
    seen = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def optimizer_bytes(opt) -> int:
    return tensor_bytes(v for st in opt.state.values() for v in st.values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- worlds ----------------------------------------------------------------------------------


@dataclass
class World:
    """A model to erase from, its frozen original, and how to build a task for a method."""

    name: str
    kind: str  # "class" or "concept"
    model: torch.nn.Module
    frozen: torch.nn.Module
    make_task: object  # (MethodSpec, batch_size) -> task
    registry: dict
    train_params: str
    second_order_params: str
    batches: list[int]
    acc: BenchAccelerator
    weights: str  # "trained asset" or "random"
    info: dict = field(default_factory=dict)


def class_world(device="cpu", batch=64, variant: dict | None = None) -> World:
    """The embedded class-conditional digits DDPM (random weights if its asset is missing)."""
    from erase.data.class_data import fit_to_model, load_class_data
    from erase.embedded import ddpm
    from erase.embedded.digits import ASSETS_DIR
    from erase.methods import CLASS_METHODS
    from erase.params import FrozenModel
    from erase.tasks.class_erasure import ClassErasureTask

    path = ASSETS_DIR / ddpm.ASSET_NAME
    if ddpm._is_ddpm_dir(path):  # never trigger the asset's training from a benchmark
        unet, scheduler, _ = ddpm.load_digits_ddpm(path)
        weights = "trained asset"
    else:
        torch.manual_seed(0)
        unet, scheduler, weights = ddpm.make_digits_unet(), ddpm.make_digits_scheduler(), "random"
    data = load_class_data("digits")
    data = fit_to_model(data, unet.config.in_channels, unet.config.sample_size)
    unet = apply_variant(unet.to(device), variant)
    frozen = FrozenModel(copy.deepcopy(unet)).to(device)

    def make_task(spec, b):
        return ClassErasureTask(
            frozen,
            scheduler,
            data,
            [7],
            ddpm.NULL_CLASS,
            spec.forget_loss,
            spec.retain_loss,
            b,
            device,
        )

    # UNet2DModel has no cross-attention: the second-order row trains all weights
    return World(
        "class DDPM 8x8",
        "class",
        unet,
        frozen,
        make_task,
        CLASS_METHODS,
        "full",
        "full",
        [batch],
        BenchAccelerator(device),
        weights,
    )


def _concept_task_factory(frozen, scheduler, forget, retain, null, device):
    from erase.tasks.concept_erasure import ConceptErasureTask

    def make_task(spec, b):
        return ConceptErasureTask(
            frozen,
            scheduler,
            forget,
            retain if spec.retain_loss else None,
            null,
            spec.forget_loss,
            spec.retain_loss,
            b,
            device,
        )

    return make_task


def tiny_sd_world(device="cpu", batch=16, train_params="noxattn", variant=None) -> World:
    """The embedded tiny Stable Diffusion: real prompt embeddings, random x0 latents (the step
    cost does not depend on their values)."""
    from erase.concept_data import embed_prompts
    from erase.embedded import tiny_sd
    from erase.embedded.digits import ASSETS_DIR
    from erase.embedded.styles import DIGIT_WORDS
    from erase.methods import CONCEPT_METHODS
    from erase.params import FrozenModel
    from erase.tasks.concept_erasure import LatentPool

    path = ASSETS_DIR / tiny_sd.ASSET_NAME
    if tiny_sd._is_pipeline_dir(path):
        pipe, weights = tiny_sd.load_tiny_sd(path), "trained asset"
    else:
        torch.manual_seed(0)
        pipe = tiny_sd.make_pipeline(
            tiny_sd.build_vae(),
            tiny_sd.build_text_encoder(),
            tiny_sd.build_tokenizer(),
            tiny_sd.build_unet(),
        )
        weights = "random"
    pipe.to(device)
    forget_prompts = ["a handwritten digit three"]
    retain_prompts = [f"a handwritten digit {w}" for w in DIGIT_WORDS if w != "three"]
    null = embed_prompts(pipe, [""], device)
    forget_emb = embed_prompts(pipe, forget_prompts, device)
    g = torch.Generator().manual_seed(0)
    size = pipe.unet.config.sample_size
    lat = torch.randn(64, pipe.unet.config.in_channels, size, size, generator=g)
    forget = LatentPool(lat, torch.zeros(64, dtype=torch.long), forget_emb, null.clone())
    retain = LatentPool(
        lat.clone(),
        torch.arange(64) % len(retain_prompts),
        embed_prompts(pipe, retain_prompts, device),
    )
    unet = apply_variant(pipe.unet, variant)
    frozen = FrozenModel(copy.deepcopy(unet)).to(device)
    return World(
        "tiny SD 8x8 latents",
        "concept",
        unet,
        frozen,
        _concept_task_factory(frozen, pipe.scheduler, forget, retain, null, device),
        CONCEPT_METHODS,
        train_params,
        "xattn",
        [batch],
        BenchAccelerator(device),
        weights,
    )


def sd15_world(device="cuda", batches=(1, 4), train_params="noxattn", variant=None) -> World:
    """The Stable Diffusion 1.5 UNet architecture with random weights, 64×64 latents.

    Trainable weights fp32 under bf16 autocast (mixed precision, as diffusers' training
    examples), frozen original in bf16; 77×768 random text states stand in for CLIP's.
    """
    from diffusers import UNet2DConditionModel

    from erase.embedded.tiny_sd import build_scheduler
    from erase.methods import CONCEPT_METHODS
    from erase.params import FrozenModel
    from erase.tasks.concept_erasure import LatentPool

    config = json.loads(SD15_CONFIG.read_text())
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(config)
    frozen = FrozenModel(copy.deepcopy(unet), torch.bfloat16).to(device)
    unet = apply_variant(unet, variant)
    g = torch.Generator().manual_seed(0)
    n, size = 32, config["sample_size"]
    lat = torch.randn(n, 4, size, size, generator=g)
    emb = torch.randn(9, 77, config["cross_attention_dim"], generator=g)
    forget = LatentPool(lat, torch.zeros(n, dtype=torch.long), emb[:1], emb[8:9].clone())
    retain = LatentPool(lat.clone(), torch.arange(n) % 7 + 1, emb)
    return World(
        "SD-1.5 UNet 64x64 bf16",
        "concept",
        unet,
        frozen,
        _concept_task_factory(frozen, build_scheduler("ddpm"), forget, retain, emb[8:9], device),
        CONCEPT_METHODS,
        train_params,
        "xattn",
        list(batches),
        BenchAccelerator(device, "bf16"),
        "random",
    )


def apply_variant(unet: torch.nn.Module, variant: dict | None) -> torch.nn.Module:
    """Optimisation variants: channels_last, classic (non-SDPA) attention, torch.compile."""
    variant = variant or {}
    if variant.get("channels_last"):
        unet = unet.to(memory_format=torch.channels_last)
    if variant.get("attn") == "classic":
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
    if variant.get("compile"):
        unet.compile()
    return unet


# -- rows: one (world, variant, method, batch) each ------------------------------------------

CPU_METHODS = ("lur", "joint", "lur-2nd", "pcgrad", "esd", "salun", "ga", "lur-resist")


@dataclass
class Row:
    world: World
    variant: str
    method: str
    batch: int
    params: str
    trainer: object
    step: int = 0
    times: list = field(default_factory=list)
    cpu_times: list = field(default_factory=list)
    mem: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def key(self) -> str:
        return f"{self.world.name} | {self.variant} | {self.method} | b{self.batch}"


def make_rows(world: World, variant: str, methods, tmp_dir: Path) -> list[Row]:
    """One trainer per method and batch; trainers with the same trainable set share one AdamW
    (its state is a per-parameter constant cost, and sharing keeps SD-1.5 within one GPU)."""
    from erase.meta_step import MetaConfig
    from erase.methods import resolve_forget_loss
    from erase.params import select_trainable
    from erase.trainer import EraseTrainer, TrainConfig

    shared: dict[str, object] = {}
    rows = []
    for batch in world.batches:
        for label in methods:
            second = label == "lur-2nd"
            # the concept methods' forget loss "auto" is resolved as the job resolves it; the
            # benchmark's concepts name no anchor (their anchor pool is the empty prompt)
            spec = resolve_forget_loss(world.registry["lur" if second else label], False)
            params = world.second_order_params if second else world.train_params
            named = select_trainable(world.model, params)
            meta = MetaConfig(
                mode="second_order" if second else "first_order",
                inner_lr=3e-4,
                retain_weight=spec.retain_weight,
                order=spec.meta_order,  # the method's own order, as the job's default
                resist_steps=spec.resist_steps,  # the method's own K, as the job's default
                resist_every=spec.resist_every,
                resist_weight=spec.resist_weight,
            )
            cfg = TrainConfig(learning_rate=1e-5, train_batch_size=batch, monitor_every=0)
            task = world.make_task(spec, batch)
            trainer = EraseTrainer(
                world.acc, world.model, named, task, spec, meta, cfg, tmp_dir / label
            )
            if params in shared:
                trainer.optimizer, trainer.lr_scheduler = shared[params]
                trainer.ctx.optimizer = trainer.optimizer
            else:
                shared[params] = (trainer.optimizer, trainer.lr_scheduler)
            name = f"{label}({params})" if second else label
            rows.append(Row(world, variant, name, batch, params, trainer))
    return rows


def _activate(row: Row) -> None:
    from erase.params import select_trainable

    if getattr(row.world, "_active", None) != row.params:
        select_trainable(row.world.model, row.params)
        row.world._active = row.params
    row.world.model.train()


def _prepare(row: Row) -> None:
    """One-off work outside the step (SalUn's saliency mask)."""
    _activate(row)
    if row.trainer.method.saliency and row.trainer.mask is None:
        row.trainer.compute_saliency_mask()


def steps_per_sample(row: Row) -> int:
    """Steps timed as one sample: a whole cycle of ``lur-resist --resist_every N`` (one attacked
    step, N - 1 of lur's), whose mean is its cost a step; one step for every other rule."""
    return row.trainer.meta.resist_every if row.trainer.method.rule == "meta-resist" else 1


def timed_step(row: Row) -> tuple[float, float]:
    """(seconds, CPU seconds) of one ``train_step`` (the mean over a cycle, where the rule has
    one): CUDA events on GPU; on CPU wall clock and this process's CPU time, which other
    processes on a shared machine barely disturb."""
    _activate(row)
    device = row.world.acc.device
    n = steps_per_sample(row)

    def cycle() -> None:
        for i in range(n):
            row.trainer.train_step(row.step + i)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        cycle()
        end.record()
        end.synchronize()
        dt = cpu = start.elapsed_time(end) / 1000.0 / n
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        cycle()
        dt, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    row.step += n
    return dt, cpu


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc)


def static_bytes(row: Row) -> int:
    """What persists between steps: weights, buffers, frozen original, optimizer state, mask."""
    model, frozen = row.world.model, row.world.frozen
    tensors = [*model.parameters(), *model.buffers(), *frozen.parameters(), *frozen.buffers()]
    state = [v for st in row.trainer.optimizer.state.values() for v in st.values()]
    mask = list(row.trainer.mask.values()) if row.trainer.mask else []
    return tensor_bytes(tensors + state + mask)


def measure_memory(row: Row) -> None:
    """Peak bytes allocated during one step above the persistent state, and frozen forwards."""
    _activate(row)
    device = row.world.acc.device
    calls = []
    hook = row.world.frozen.register_forward_hook(
        lambda mod, args, out: calls.append(int(args[0].shape[0]))
    )
    try:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            row.trainer.train_step(row.step)
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - base
            leak = torch.cuda.memory_allocated(device) - base
        else:
            with LiveBytes() as live:
                row.trainer.train_step(row.step)
            peak, leak = live.peak, live.live
    finally:
        hook.remove()
    row.step += 1
    row.mem = {
        "peak_extra_bytes": int(peak),
        "left_after_step_bytes": int(leak),
        "static_bytes": static_bytes(row),
        "trainable_param_bytes": tensor_bytes(row.trainer.params),
        "frozen_forwards": calls,
    }
    row.mem["total_peak_bytes"] = row.mem["static_bytes"] + row.mem["peak_extra_bytes"]


def run_rows(rows: list[Row], warmup: int, repeats: int, memory: bool = True) -> None:
    """Warm-up, memory pass, then ``repeats`` round-robin rounds (start rotated each round)."""
    live = list(rows)

    def guarded(fn, row):
        try:
            return fn(row)
        except RuntimeError as exc:
            if not _is_oom(exc):
                raise
            row.error = "out of memory"
            live.remove(row)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"  {row.key}: out of memory, dropped", flush=True)

    for r in list(live):
        guarded(_prepare, r)
    for _ in range(warmup):
        for r in list(live):
            guarded(timed_step, r)
    if memory:
        for r in list(live):
            guarded(measure_memory, r)
    for i in range(repeats):
        k = i % max(1, len(live))
        for r in live[k:] + live[:k]:
            dt = guarded(timed_step, r)
            if dt is not None:
                r.times.append(dt[0])
                r.cpu_times.append(dt[1])


# -- the esd target: one batched frozen forward for cond + uncond ----------------------------


def esd_forward_check(world: World) -> dict:
    """Count forwards of the frozen model while the esd task builds one step's closures."""
    spec = world.registry["esd"]
    task = world.make_task(spec, world.batches[0])
    calls = []
    hook = world.frozen.register_forward_hook(
        lambda mod, args, out: calls.append(int(args[0].shape[0]))
    )
    try:
        from erase.step_rng import step_generator

        task.closures(step_generator(0, 0, 0))
    finally:
        hook.remove()
    b = world.batches[0]
    return {
        "world": world.name,
        "batch": b,
        "frozen_forwards": len(calls),
        "frozen_batch_sizes": calls,
        "batched": calls == [2 * b],
    }


# -- report ----------------------------------------------------------------------------------


def summarize(rows: list[Row]) -> list[dict]:
    out = []
    for r in rows:
        t = sorted(r.times)
        c = sorted(r.cpu_times)
        d = {
            "world": r.world.name,
            "weights": r.world.weights,
            "device": str(r.world.acc.device),
            "precision": r.world.acc.mixed_precision,
            "variant": r.variant,
            "method": r.method,
            "batch": r.batch,
            "train_params": r.params,
            "n": len(t),
            "median_s": statistics.median(t) if t else None,
            "q1_s": t[len(t) // 4] if t else None,
            "q3_s": t[(3 * len(t)) // 4] if t else None,
            "cpu_median_s": statistics.median(c) if c else None,
            "times_s": r.times,
            "cpu_times_s": r.cpu_times,
            "error": r.error,
            **r.mem,
        }
        out.append(d)
    return out


def ratios(results: list[dict], num: str = "lur", den: str = "joint") -> list[dict]:
    """num/den of median time, total peak and step-extra peak, per (world, variant, batch)."""
    by = {(d["world"], d["variant"], d["batch"], d["method"]): d for d in results}
    out = []
    for (w, v, b, m), d in by.items():
        j = by.get((w, v, b, den))
        if m != num or j is None or d["median_s"] is None or j["median_s"] is None:
            continue
        r = {"world": w, "variant": v, "batch": b, "time": d["median_s"] / j["median_s"]}
        r["cpu_time"] = d["cpu_median_s"] / j["cpu_median_s"]
        pairs = list(zip(d["cpu_times_s"], j["cpu_times_s"]))
        r["cpu_time_paired"] = statistics.median(a / b for a, b in pairs) if pairs else None
        if d.get("total_peak_bytes") and j.get("total_peak_bytes"):
            r["memory_total"] = d["total_peak_bytes"] / j["total_peak_bytes"]
            r["memory_step_extra"] = d["peak_extra_bytes"] / max(1, j["peak_extra_bytes"])
        out.append(r)
    return out


def _mb(x) -> str:
    return "-" if x is None else f"{x / 2**20:.1f}"


def print_table(results: list[dict]) -> None:
    """Markdown table; "x joint" compares CPU time on CPU (robust on a shared machine), GPU
    time on GPU, and the total peak memory."""
    joint = {(d["world"], d["variant"], d["batch"]): d for d in results if d["method"] == "joint"}
    head = (
        "| world | variant | method | batch | params | wall ms (IQR) | cpu ms | x joint "
        "| step peak MB | total peak MB | x joint | frozen fwd (batch) |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for d in results:
        j = joint.get((d["world"], d["variant"], d["batch"]))
        med, cpu = d["median_s"], d["cpu_median_s"]
        xt = f"{cpu / j['cpu_median_s']:.2f}" if j and cpu and j["cpu_median_s"] else "-"
        xm = (
            f"{d['total_peak_bytes'] / j['total_peak_bytes']:.3f}"
            if j and d.get("total_peak_bytes") and j.get("total_peak_bytes")
            else "-"
        )
        wall = f"{med * 1e3:.1f} ({d['q1_s'] * 1e3:.0f}-{d['q3_s'] * 1e3:.0f})" if med else "-"
        cpu_ms = f"{cpu * 1e3:.1f}" if cpu else "-"
        fwd = ",".join(str(c) for c in d.get("frozen_forwards", [])) or "-"
        print(
            f"| {d['world']} | {d['variant']} | {d['method']} | {d['batch']} | "
            f"{d['train_params']} | {wall} | {cpu_ms} | {xt} | "
            f"{_mb(d.get('peak_extra_bytes'))} | {_mb(d.get('total_peak_bytes'))} | {xm} | "
            f"{fwd} |" + (f" {d['error']}" if d["error"] else "")
        )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--worlds", nargs="+", default=["class", "tiny_sd", "sd15"])
    p.add_argument("--methods", nargs="+", default=list(CPU_METHODS))
    p.add_argument("--warmup", type=int, default=1, help="round-robin rounds before timing")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default 10 CPU, 20 GPU)"
    )
    p.add_argument("--class_batch", type=int, default=8)
    p.add_argument("--tiny_sd_batch", type=int, default=8)
    p.add_argument("--sd15_batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--train_params", default="noxattn", help="text-to-image trainable set")
    p.add_argument(
        "--variants",
        nargs="*",
        default=[],
        choices=["channels_last", "attn_classic", "compile"],
        help="also time lur and joint on copies of each world with these optimisations",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 by default: on a shared machine OpenMP threads waiting "
        "for descheduled siblings made steps 3-20x slower and far noisier",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="every method once on the CPU worlds at batch 2, no warm-up: checks that the "
        "benchmark runs, its numbers mean nothing",
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.worlds = [w for w in args.worlds if w != "sd15"]
        args.warmup, args.repeats, args.class_batch, args.tiny_sd_batch = 0, 1, 2, 2
        args.variants = []
    return args


VARIANTS = {
    "baseline": {},
    "channels_last": {"channels_last": True},
    "attn_classic": {"attn": "classic"},
    "compile": {"compile": True},
}


def build_world(name: str, args, variant: dict) -> World | None:
    if name == "class":
        return class_world("cpu", args.class_batch, variant)
    if name == "tiny_sd":
        return tiny_sd_world("cpu", args.tiny_sd_batch, args.train_params, variant)
    if name == "sd15":
        if not torch.cuda.is_available():
            print("SD-1.5 UNet world: skipped (needs CUDA; none available)", flush=True)
            return None
        return sd15_world("cuda", args.sd15_batches, args.train_params, variant)
    raise SystemExit(f"unknown world {name!r}; choose class, tiny_sd, sd15")


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    results, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for wname in args.worlds:
            variants = ["baseline"] + list(args.variants)
            if wname == "class":
                variants = [v for v in variants if v != "attn_classic"]  # no attention processor
            rows, base = [], None
            for v in variants:
                world = build_world(wname, args, VARIANTS[v])
                if world is None:
                    break
                if v == "baseline":
                    base = world
                methods = args.methods if v == "baseline" else ["lur", "joint"]
                if world.acc.device.type == "cuda":
                    methods = [m for m in methods if m != "lur-2nd"] + (
                        ["lur-2nd"] if "lur-2nd" in methods else []
                    )
                rows += make_rows(world, v, methods, Path(tmp) / wname / v)
            if not rows:
                continue
            gpu = base.acc.device.type == "cuda"
            repeats = args.repeats or (20 if gpu else 10)
            print(f"{base.name} ({base.weights} weights): {len(rows)} rows x {repeats} rounds")
            t0 = time.perf_counter()
            run_rows(rows, args.warmup, repeats)
            print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
            checks.append(esd_forward_check(base))
            results += summarize(rows)
            del rows, base
    print()
    print_table(results)
    print()
    for c in checks:
        print(
            f"esd target ({c['world']}, batch {c['batch']}): {c['frozen_forwards']} frozen "
            f"forward(s) of batch {c['frozen_batch_sizes']} -> "
            + ("one batched cond+uncond forward" if c["batched"] else "NOT batched")
        )
    rs = ratios(results)
    payload = {
        **machine_record("step_cost.py"),
        "seconds": round(time.perf_counter() - t_start, 1),
        "results": results,
        "ratios_lur_over_joint": rs,
        "ratios_resist_over_lur": ratios(results, "lur-resist", "lur"),
        "esd_frozen_forward_check": checks,
    }
    if args.output:
        Path(args.output).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.output}")
    parts = [
        f"{r['world']}{'' if r['variant'] == 'baseline' else ' ' + r['variant']} b{r['batch']}: "
        f"time {r['cpu_time']:.2f}x (paired {r['cpu_time_paired']:.2f}x, wall {r['time']:.2f}x), "
        f"memory {r.get('memory_total', float('nan')):.3f}x "
        f"(step extra {r.get('memory_step_extra', float('nan')):.2f}x)"
        for r in rs
    ]
    print("lur/joint: " + "; ".join(parts))
    for r in ratios(results, "lur-resist", "lur"):
        print(
            f"lur-resist/lur ({r['world']} b{r['batch']}): time {r['cpu_time']:.2f}x, "
            f"memory {r.get('memory_total', float('nan')):.3f}x "
            f"(step extra {r.get('memory_step_extra', float('nan')):.2f}x)"
        )


if __name__ == "__main__":
    main()
