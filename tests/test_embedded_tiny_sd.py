"""The embedded text-to-image world: offline CLIP tokenizer, the committed tiny SD and its judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_same_pixels

from erase.embedded.styles import DIGIT_WORDS, STYLES, digit_prompt, render, style_prompt
from erase.errors import EraseError


@pytest.fixture(scope="module")
def tokenizer():
    from erase.embedded.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(model_max_length=16)


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    from erase.embedded.tiny_sd import tiny_sd_path

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    p = StableDiffusionPipeline.from_pretrained(str(tiny_sd_path()))
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def judge():
    from erase.embedded.judge import load_judge

    return load_judge()


def test_tokenizer_is_real_clip(tokenizer):
    assert len(tokenizer) == 49408
    ids = tokenizer("a handwritten digit three in inverted style").input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == [
        "<|startoftext|>", "a</w>", "handwritten</w>", "digit</w>", "three</w>",
        "in</w>", "inverted</w>", "style</w>", "<|endoftext|>",
    ]  # fmt: skip
    # the ids of the real openai/clip-vit tokenizer
    assert ids[:5] == [49406, 320, 35192, 27472, 2097] and ids[-1] == 49407
    assert tokenizer.decode(ids, skip_special_tokens=True) == (
        "a handwritten digit three in inverted style"
    )
    padded = tokenizer("", padding="max_length", max_length=16).input_ids
    assert len(padded) == 16 and padded[0] == 49406


def test_styles_and_prompts():
    from erase.embedded.digits import load_digits_images

    x, _ = load_digits_images()
    outs = {s: render(x[:4], s) for s in STYLES}
    for out in outs.values():
        assert out.shape == (4, 1, 16, 16) and out.min() >= -1 and out.max() <= 1
    # (1 - ink) * 2 - 1 against -(ink * 2 - 1): elementwise IEEE operations, the same on every
    # CPU; 1 - ink rounds by at most half an ulp of 1 (6e-8), doubled by * 2
    torch.testing.assert_close(outs["inverted"], -outs["plain"], rtol=0, atol=1.2e-7)
    assert digit_prompt(3) == "a handwritten digit three"
    assert style_prompt(3, "inverted") == "a handwritten digit three in inverted style"
    assert DIGIT_WORDS[7] == "seven"
    with pytest.raises(EraseError, match="unknown style"):
        render(x[:1], "cubist")


def test_judge_held_out_accuracy(judge):
    from erase.embedded.judge import judge_accuracy

    acc = judge_accuracy(judge, "test")
    assert acc["digit_accuracy"] >= 0.97
    assert acc["style_accuracy"] >= 0.97


def test_pipeline_generates_deterministically(pipe):
    from erase.embedded.tiny_sd import generate

    assert pipe.tokenizer.model_max_length == pipe.text_encoder.config.max_position_embeddings
    prompts = ["a handwritten digit one", "a handwritten digit two in thick style", ""]
    a = generate(pipe, prompts, [1, 2, 3], num_inference_steps=5, output_type="pt")
    assert a.shape == (3, 3, 16, 16) and a.min() >= -1 and a.max() <= 1
    # each image depends only on its (prompt, seed): not on the batch it was sampled in
    b = generate(pipe, prompts[1:2], [2], num_inference_steps=5, output_type="pt")
    assert_same_pixels(a[1:2], b)  # batch of 3 vs 1: rounding only (see assert_same_pixels)
    c = generate(pipe, prompts[1:2], [5], num_inference_steps=5, output_type="pt")
    assert not torch.allclose(b, c, atol=1e-2)
    # the plain diffusers call path, one generator per image
    out = pipe(
        prompts[:2],
        num_inference_steps=5,
        generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        guidance_scale=4.0,
    ).images
    assert [im.size for im in out] == [(16, 16), (16, 16)]
    # diffusers rounds (x / 2 + 0.5) * 255 to 8 bits (<= 0.5 level off the unrounded value) and
    # sampled in a batch of 2 (<= 1 level, see assert_same_pixels): 1.5 levels in all
    assert torch.allclose(
        torch.from_numpy(np.asarray(out[1])).float(),
        ((b[0].permute(1, 2, 0) + 1) * 127.5),
        atol=1.5,
    )


def test_samples_are_judged_as_prompted(pipe, judge):
    """A broken model (ignores the text) would score ~10 % digits, ~20 % styles."""
    from erase.embedded.judge import judge_images
    from erase.embedded.tiny_sd import generate

    digits = [0, 3, 4, 7]
    prompts = [digit_prompt(d) for d in digits for _ in range(6)]
    want = torch.tensor([d for d in digits for _ in range(6)])
    x = generate(pipe, prompts, list(range(len(prompts))), output_type="pt")
    dp, _ = judge_images(x, judge)
    assert (dp == want).float().mean() >= 0.7

    styles = ["inverted", "thick", "outlined", "striped"]
    prompts = [style_prompt(k % 10, s) for s in styles for k in range(6)]
    want = torch.tensor([STYLES.index(s) for s in styles for _ in range(6)])
    x = generate(pipe, prompts, list(range(100, 100 + len(prompts))), output_type="pt")
    _, sp = judge_images(x, judge)
    assert (sp == want).float().mean() >= 0.7


def test_the_second_judge_is_another_family_that_agrees_with_the_first(pipe, judge):
    """The tiny world's second judge (SVMs on raw pixels, fitted on the real train split in
    every style) reads the real held-out digits, and on the world's own samples says what the
    CNN judge says: a figure both report is not one classifier's artefact. (On 200 samples:
    97 % agreement on the digit, 100 % on the style.)"""
    from erase.embedded.judge import judge_images
    from erase.embedded.svm import styled_svm_predict, styled_svms
    from erase.embedded.tiny_sd import generate

    _, _, accuracy = styled_svms()
    assert accuracy["digit_accuracy"] >= 0.95 and accuracy["style_accuracy"] >= 0.95
    pairs = [(d, s) for s in STYLES for d in range(10)]
    prompts = [digit_prompt(d) if s == "plain" else style_prompt(d, s) for d, s in pairs]
    x = generate(pipe, prompts, list(range(2000, 2000 + len(prompts))), output_type="pt")
    cnn, svm = judge_images(x, judge), styled_svm_predict(x)
    assert (svm[1] == torch.tensor([STYLES.index(s) for _, s in pairs])).float().mean() >= 0.9
    assert (svm[0] == torch.tensor([d for d, _ in pairs])).float().mean() >= 0.8
    assert (cnn[0] == svm[0]).float().mean() >= 0.85 and (cnn[1] == svm[1]).float().mean() >= 0.9
