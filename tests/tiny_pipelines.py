"""Tiny pipelines of the families users bring, built from configs as diffusers' own tests build
them: an SDXL pipeline (two text encoders, ``text_time`` added conditioning, an Euler
scheduler) and an SD 2.x-shaped v-prediction pipeline. Random weights: they exercise the code
paths (conditioning, prediction space, resolution, saving), not quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_HIDDEN = 32
MAX_TOKENS = 16


def _text_config(projection_dim: int = TEXT_HIDDEN):
    from transformers import CLIPTextConfig

    from erase.embedded.tokenizer import CLIP_VOCAB_SIZE

    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=2 * TEXT_HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=projection_dim,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        mid_block_add_attention=False,
    )


def build_tiny_sdxl(path: Path, seed: int = 0) -> Path:
    """A ``StableDiffusionXLPipeline`` at 16×16 (latents 8×8), saved to ``path``."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from erase.embedded.tokenizer import build_clip_tokenizer

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32),
            layers_per_block=1,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            transformer_layers_per_block=(1, 1),
            cross_attention_dim=2 * TEXT_HIDDEN,  # both encoders' states, concatenated
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + TEXT_HIDDEN,
            norm_num_groups=8,
        )
        pipe = StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(_text_config()),
            text_encoder_2=CLIPTextModelWithProjection(_text_config()),
            tokenizer=build_clip_tokenizer(model_max_length=MAX_TOKENS),
            tokenizer_2=build_clip_tokenizer(model_max_length=MAX_TOKENS),
            unet=unet,
            scheduler=EulerDiscreteScheduler(
                beta_start=0.00085,
                beta_end=0.012,
                beta_schedule="scaled_linear",
                steps_offset=1,
                timestep_spacing="leading",
            ),
        )
    pipe.save_pretrained(path)
    return path


def build_tiny_sd_v(path: Path, seed: int = 0) -> Path:
    """An SD 2.x-shaped ``StableDiffusionPipeline`` predicting v (linear projections, head
    dims per block, DDIM with ``prediction_type="v_prediction"``), native size 24×24 (latents
    12×12), saved to ``path``."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from erase.embedded.tokenizer import build_clip_tokenizer

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=12,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32),
            layers_per_block=1,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            cross_attention_dim=TEXT_HIDDEN,
            norm_num_groups=8,
        )
        pipe = StableDiffusionPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(_text_config()),
            tokenizer=build_clip_tokenizer(model_max_length=MAX_TOKENS),
            unet=unet,
            scheduler=DDIMScheduler(
                beta_start=0.00085,
                beta_end=0.012,
                beta_schedule="scaled_linear",
                prediction_type="v_prediction",
                clip_sample=False,
                set_alpha_to_one=False,
                steps_offset=1,
            ),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.save_pretrained(path)
    return path
