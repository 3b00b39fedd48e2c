"""Concept Ablation (model- and noise-based): the forget batch is the anchor's images under the
concept's prompt, training stays on the cross-attention, and both variants run the job."""

from __future__ import annotations

import argparse
import json

import pytest
import torch


def test_ca_forget_images_are_the_anchors(tiny_models):
    from diffusers import StableDiffusionPipeline

    from erase.concept_data import build_pools, generate_latents
    from erase.concepts import resolve_concept

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    concept = resolve_concept("three")
    concept.anchor = ["a handwritten digit five"]
    args = argparse.Namespace(
        seed=0, gen_steps=2, gen_guidance_scale=4.0, gen_batch_size=8, images_per_prompt=1,
        retain_images_per_prompt=1, forget_images=None, resolution=None,
    )  # fmt: skip
    forget, _, _ = build_pools(pipe, concept, [], args, "cpu", None, False, forget_from_anchor=True)
    anchors = ["a handwritten digit five"] * len(concept.forget)
    want, idx = generate_latents(pipe, anchors, 1, 0, 2, 4.0, "cpu", 8, None, False)
    assert torch.equal(forget.latents, want) and torch.equal(forget.prompt_index, idx)
    ordinary, _, _ = build_pools(pipe, concept, [], args, "cpu", None, False)
    assert not torch.equal(ordinary.latents, want)
    # the prompts stay the concept's: the pool pairs anchor images with concept conditions
    assert torch.equal(forget.embeddings.embeds, ordinary.embeddings.embeds)


@pytest.mark.parametrize("method,loss", [("ca", "anchor"), ("ca-noise", "noise")])
def test_ca_variants_train_the_cross_attention(tiny_models, tmp_path, method, loss):
    from safetensors.torch import load_file

    from erase.cli import erase_concept

    out = tmp_path / method
    erase_concept.main(
        ["--pretrained_model_name_or_path", str(tiny_models["sd"]), "--concept", "three",
         "--anchor", "a handwritten digit five", "--method", method, "--output_dir", str(out),
         "--no_eval", "--max_train_steps", "3", "--train_batch_size", "2",
         "--images_per_prompt", "1", "--retain_images_per_prompt", "1", "--gen_steps", "2",
         "--validation_prompts", "a handwritten digit three", "--learning_rate", "1e-3"]
    )  # fmt: skip
    config = json.loads((out / "erase_config.json").read_text())
    assert config["train_params"] == "xattn"
    assert config["method_spec"]["forget_loss"] == loss
    assert config["method_spec"]["forget_data"] == "anchor"
    name = "unet/diffusion_pytorch_model.safetensors"
    a, b = load_file(str(tiny_models["sd"] / name)), load_file(str(out / name))
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all("attn2" in k for k in changed)
    log = json.loads((out / "step_log.json").read_text())
    assert all(r["loss_forget"] > 0 for r in log)
