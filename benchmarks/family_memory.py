#!/usr/bin/env python
"""GPU memory and time of one erasure step on the real model sizes, from their UNet configs.

    python benchmarks/family_memory.py --output family_memory.json          # needs a GPU
    python benchmarks/family_memory.py --smoke --output smoke.json          # CPU, shrunk

For SD 1.5 (512, ε), SD 2.1 (768, v-prediction) and SDXL base (1024, two text encoders and
``text_time`` conditioning), each UNet is built from its published config with random weights
(no download), trained in fp32 under bf16 autocast with gradient checkpointing, its frozen
original in bf16 (or, with LoRA, the same UNet with adapters off), and runs the real
``EraseTrainer.train_step`` of ``erase_concept`` on one latent batch at the native size:
the number the README's "supported models" table needs (peak ``max_memory_allocated``). Each
row also gives the lur/joint ratio on the same model and batch. ``--smoke`` shrinks every
config (same block types, conditioning and prediction type) to check the path on a CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _scripts import machine_record  # noqa: E402

FAMILIES = {  # name: (UNet config, prediction type)
    "sd15": ("sd15_unet_config.json", "epsilon"),
    "sd21v": ("sd21v_unet_config.json", "v_prediction"),
    "sdxl": ("sdxl_unet_config.json", "epsilon"),
}


def unet_config(family: str, smoke: bool) -> dict:
    cfg = json.loads((HERE / FAMILIES[family][0]).read_text())
    if not smoke:
        return cfg
    n = len(cfg["block_out_channels"])
    cfg.update(
        block_out_channels=[16 * min(i + 1, 2) for i in range(n)],
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=16,
        sample_size=8,
    )
    heads = cfg.get("attention_head_dim", 8)
    cfg["attention_head_dim"] = [2] * n if isinstance(heads, list) else 2
    if "transformer_layers_per_block" in cfg:
        cfg["transformer_layers_per_block"] = [1] * n
    if cfg.get("addition_embed_type") == "text_time":
        cfg.update(
            addition_time_embed_dim=4,
            addition_embed_type_num_heads=2,
            projection_class_embeddings_input_dim=6 * 4 + 8,
        )
    return cfg


def conditions(cfg: dict, n: int, device, seed: int = 1):
    """Random prompt conditions of the family's shape (77 tokens; SDXL adds pooled + ids)."""
    from erase.families import TextCond

    g = torch.Generator().manual_seed(seed)
    tokens = 77 if cfg["sample_size"] > 8 else 8
    embeds = torch.randn(n, tokens, cfg["cross_attention_dim"], generator=g)
    if cfg.get("addition_embed_type") != "text_time":
        return TextCond(embeds).to(device)
    pooled_dim = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
    res = cfg["sample_size"] * 8
    ids = torch.tensor([[res, res, 0, 0, res, res]], dtype=torch.float32).expand(n, 6)
    return TextCond(embeds, torch.randn(n, pooled_dim, generator=g), ids.clone()).to(device)


def one_row(family: str, method: str, train_params: str, args, acc) -> dict:
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from erase.cli.erase_concept import add_lora
    from erase.meta_step import MetaConfig
    from erase.methods import CONCEPT_METHODS, resolve_forget_loss
    from erase.params import AdaptersDisabled, FrozenModel, select_trainable
    from erase.steplog import forget_loss
    from erase.tasks.concept_erasure import ConceptErasureTask, LatentPool
    from erase.trainer import EraseTrainer, TrainConfig

    device = acc.device
    cfg = unet_config(family, args.smoke)
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(cfg).to(device)
    if train_params == "lora":
        add_lora(unet, 8)
        frozen = AdaptersDisabled(unet)
    else:
        frozen = FrozenModel(copy.deepcopy(unet), torch.bfloat16 if args.bf16 else None)
    unet.enable_gradient_checkpointing()
    unet.train()
    named = select_trainable(unet, train_params)
    b, s = args.batch_size, cfg["sample_size"]
    pool_n = 2 * b
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(pool_n, cfg["in_channels"], s, s, generator=g)
    cond = conditions(cfg, pool_n, "cpu")
    anchor = conditions(cfg, pool_n, "cpu", seed=2)
    forget = LatentPool(latents, torch.arange(pool_n), cond, anchor)
    retain = LatentPool(latents.clone(), torch.arange(pool_n), cond.clone())
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=FAMILIES[family][1],
    )
    spec = resolve_forget_loss(CONCEPT_METHODS[method], has_anchor=True)
    null = conditions(cfg, 1, "cpu", seed=3)
    task = ConceptErasureTask(
        frozen, scheduler, forget, retain, null, spec.forget_loss, spec.retain_loss, b, device
    )
    train_cfg = TrainConfig(max_train_steps=args.steps + 1, learning_rate=1e-5, train_batch_size=b,
                            monitor_every=10**9)  # fmt: skip
    meta = MetaConfig(inner_lr=1e-5, retain_weight=spec.retain_weight, order=spec.meta_order)
    trainer = EraseTrainer(acc, unet, named, task, spec, meta, train_cfg, args.tmp_dir)
    cuda = device.type == "cuda"
    trainer.train_step(0)  # warm-up: kernels, optimizer state
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        stats = trainer.train_step(step)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    row = {
        "family": family,
        "method": method,
        "train_params": train_params,
        "resolution": s * 8,
        "batch": b,
        "unet_params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
        "trainable_params_M": round(sum(p.numel() for p in named.values()) / 1e6, 3),
        "step_seconds": round(sorted(times)[len(times) // 2], 4),
        "peak_memory_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "loss_forget": float(forget_loss(stats)),
    }
    del trainer, unet, frozen, task
    if cuda:
        torch.cuda.empty_cache()
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--methods", nargs="+", default=["lur", "joint"])
    p.add_argument("--train_params", nargs="+", default=["noxattn", "lora"])
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--smoke", action="store_true", help="shrunk configs on the CPU")
    p.add_argument("--output", default="family_memory.json")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    import tempfile

    from accelerate import Accelerator

    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("family_memory.py measures GPU memory: run it on a GPU, or pass --smoke")
    args.bf16 = not args.smoke
    acc = Accelerator(mixed_precision="bf16" if args.bf16 else "no", cpu=args.smoke)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp_dir = tmp
        for family in args.families:
            for params in args.train_params:
                for method in args.methods:
                    row = one_row(family, method, params, args, acc)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    for row in rows:  # lur against joint on the same model, set and batch
        joint = [
            r
            for r in rows
            if r["method"] == "joint"
            and (r["family"], r["train_params"]) == (row["family"], row["train_params"])
        ]
        if joint and row["method"] != "joint":
            row["time_vs_joint"] = round(row["step_seconds"] / joint[0]["step_seconds"], 3)
            if row["peak_memory_GiB"]:
                row["memory_vs_joint"] = round(
                    row["peak_memory_GiB"] / joint[0]["peak_memory_GiB"], 3
                )
    result = {"machine": machine_record("family_memory.py"), "smoke": args.smoke, "rows": rows}
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
