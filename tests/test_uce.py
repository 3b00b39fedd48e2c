"""UCE, the closed-form baseline: the edit is the minimiser of its objective, it touches only
the cross-attention keys and values, and it runs through the same job as every method."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _objective_grad(w_new, w, c_e, c_g, c_p, lamb, s_e, s_p):
    """∇ of λ‖W'−W‖² + s_e Σ‖W'cᵢ − W c_g,ᵢ‖² + s_p Σ‖W'cⱼ − W cⱼ‖² (up to a factor 2)."""
    g = lamb * (w_new - w)
    g += s_e * (c_e @ w_new.T - c_g @ w.T).T @ c_e
    g += s_p * (c_p @ w_new.T - c_p @ w.T).T @ c_p
    return g


@pytest.mark.parametrize("lamb,s_e,s_p", [(0.5, 1.0, 1.0), (0.1, 3.0, 0.3), (2.0, 1.0, 0.0)])
def test_uce_edit_is_the_minimiser_of_its_objective(lamb, s_e, s_p):
    from diffusers import UNet2DConditionModel

    from erase.families import TextCond
    from erase.uce import UCEConfig, kv_projections, uce_edit

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=24,
        attention_head_dim=4, norm_num_groups=8,
    )  # fmt: skip
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    concept = TextCond(torch.randn(2, 5, 24))
    guide = TextCond(torch.randn(2, 5, 24))
    retain = TextCond(torch.randn(3, 5, 24))
    changes = uce_edit(unet, concept, guide, retain, UCEConfig(lamb, s_e, s_p))
    kv = kv_projections(unet)
    assert set(changes) == set(kv) and all(c > 0 for c in changes.values())
    c_e, c_g, c_p = (x.embeds.reshape(-1, 24).double() for x in (concept, guide, retain))
    for name, lin in kv.items():
        w, w_new = before[name].double(), lin.weight.double()
        at_new = _objective_grad(w_new, w, c_e, c_g, c_p, lamb, s_e, s_p).norm()
        at_old = _objective_grad(w, w, c_e, c_g, c_p, lamb, s_e, s_p).norm()
        # solved in float64, stored in float32: what is left of the gradient is float32
        # rounding (2⁻²⁴ relative) amplified by the system's condition number (≤ ~10³ here)
        assert at_new / at_old < 1e-4
    after = unet.state_dict()
    untouched = [k for k in before if k not in kv and not torch.equal(before[k], after[k])]
    assert untouched == []


def test_uce_with_no_preservation_sends_the_concept_to_its_guide():
    """λ → 0 and s_p = 0: W' c_e = W c_guide exactly (the concept's keys become the guide's)."""
    from erase.uce import UCEConfig, uce_edit

    torch.manual_seed(1)
    lin = torch.nn.Linear(16, 8, bias=False)
    holder = torch.nn.Module()
    holder.attn2 = torch.nn.Module()
    holder.attn2.to_k = lin
    w = lin.weight.detach().clone()
    concept, guide = torch.randn(1, 3, 16), torch.randn(1, 3, 16)
    uce_edit(holder, concept, guide, None, UCEConfig(1e-6, 1.0, 0.0))
    want = guide.reshape(-1, 16) @ w.T
    got = concept.reshape(-1, 16) @ lin.weight.detach().T
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_uce_job_edits_only_keys_and_values_in_seconds(tiny_models, tmp_path):
    from safetensors.torch import load_file

    from erase.cli import erase_concept

    out = tmp_path / "uce"
    erase_concept.main(
        ["--pretrained_model_name_or_path", str(tiny_models["sd"]), "--concept", "three",
         "--method", "uce", "--output_dir", str(out), "--no_eval", "--gen_steps", "2",
         "--validation_prompts", "a handwritten digit three"]
    )  # fmt: skip
    config = json.loads((out / "erase_config.json").read_text())
    assert config["method"] == "uce" and config["train_params"] == "xattn-kv"
    assert config["erasure_seconds"] < 10
    assert config["uce"]["guide_prompts"] == [""] and config["uce"]["preserve_scale"] == 1.0
    name = "unet/diffusion_pytorch_model.safetensors"
    a, b = load_file(str(tiny_models["sd"] / name)), load_file(str(out / name))
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all("attn2.to_k" in k or "attn2.to_v" in k for k in changed)
    assert not (out / "cache").exists()  # no images were generated for a closed-form edit
