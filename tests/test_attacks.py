"""Attacks on the embedded world: they succeed on the original model, their records agree with
the judge, and relearning brings an erased class back."""

from __future__ import annotations

import json

import pytest

from erase.attacks.judges import make_judge
from erase.cli import attack as attack_cli
from erase.errors import EraseError
from erase.images import load_image

FAST = ["--iterations", "4", "--timesteps", "1", "--num_inference_steps", "10"]


def _attack(out, *args):
    result = attack_cli.run(attack_cli.parse_args([*map(str, args), "--output_dir", str(out)]))
    on_disk = json.loads((out / "attack.json").read_text())
    assert on_disk["asr"] == result["asr"] and on_disk["n"] == len(on_disk["records"])
    assert (out / "grid.png").is_file()
    return on_disk


def _assert_records_agree_with_judge(result, out, judge):
    for r in result["records"]:
        erased = load_image(out / r["erased_image"])
        attacked = load_image(out / r["image"])
        assert judge.sees([erased])[0] == r["success_before"], r
        if r["image"] != r["erased_image"]:
            assert judge.sees([attacked])[0] == r["success"], r
    n_before = sum(r["success_before"] for r in result["records"])
    n_after = sum(r["success"] or r["success_before"] for r in result["records"])
    assert result["pre_asr"] == pytest.approx(n_before / result["n"])
    assert result["asr"] == pytest.approx(n_after / result["n"])


@pytest.mark.parametrize("attack", ["unlearndiff", "soft_prompt", "concept_inversion"])
def test_prompt_attack_on_the_original_succeeds_and_records_agree_with_the_judge(attack, tmp_path):
    args = ["embedded", "--concept", "seven", "--attack", attack, "--max_prompts", "2"]
    result = _attack(tmp_path, *args, "--seeds", "0", "1", "--attack_all", *FAST)
    assert result["asr"] >= 0.95
    assert result["judge"]["target"] == "seven" and result["settings"]["tokens"] == 3
    attacked = [r for r in result["records"] if r["image"] != r["erased_image"]]
    assert len(attacked) == result["n"]  # --attack_all attacks every prompt
    for r in attacked:
        if attack == "unlearndiff":  # a real prompt: the adversarial words, then the prompt
            assert r["adversarial_prompt"].endswith(r["prompt"])
            assert len(r["adversarial_prompt"].split()) == len(r["prompt"].split()) + 3
        else:
            assert r["adversarial_prompt"] is None
    _assert_records_agree_with_judge(result, tmp_path, make_judge(None, ["seven"], "seven"))


def test_relearning_raises_the_forgotten_class_share(tmp_path):
    """Erase digit 7 from the embedded DDPM (esd, 30 steps), then fine-tune on 32 real sevens."""
    from erase.cli import erase_class

    erased = tmp_path / "erased"
    erase_class.run(
        erase_class.parse_args(
            ["--forget_class", "7", "--method", "esd", "--max_train_steps", "30"]
            + ["--train_batch_size", "16", "--learning_rate", "3e-4", "--no_eval"]
            + ["--stop_at_erased", "off"]
            + ["--output_dir", str(erased)]
        )
    )
    out = tmp_path / "attack"
    result = _attack(
        out,
        erased,
        "--forget_class",
        "7",
        "--attack",
        "relearn",
        "--samples",
        "16",
        "--relearn_steps",
        "10",
        "20",
        "--num_inference_steps",
        "20",
    )
    curve = result["curve"]
    assert [p["steps"] for p in curve] == [0, 10, 20]
    assert curve[0]["share"] <= 0.5, curve  # the erasure worked
    assert curve[-1]["share"] >= curve[0]["share"] + 0.3, curve  # and relearning undoes it
    assert result["judge"]["target"] == 7
    _assert_records_agree_with_judge(result, out, make_judge("digits", forget_class=7))


def test_a_class_model_takes_relearn_only(tmp_path):
    with pytest.raises(EraseError, match="relearn"):
        attack_cli.run(
            attack_cli.parse_args(
                ["embedded", "--forget_class", "7", "--attack", "unlearndiff"]
                + ["--output_dir", str(tmp_path)]
            )
        )


def test_an_image_classifier_folder_judges_by_its_labels(tmp_path):
    """Any transformers image-classification folder; verdict = top-1 label among the given."""
    import torch
    from PIL import Image
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    labels = {0: "tench", 1: "garbage truck", 2: "church"}
    cfg = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 8],
        depths=[1, 1],
        num_labels=3,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(0)
    model = ResNetForImageClassification(cfg).eval()
    model.save_pretrained(tmp_path)
    processor = ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0)
    processor.save_pretrained(tmp_path)
    judge = make_judge(str(tmp_path), concept_name="garbage_truck", labels=["garbage truck", "2"])
    assert judge.settings["labels"] == ["garbage truck", "church"]
    images = [Image.new("RGB", (16, 16), (40 * i, 255 - 60 * i, 30 * i)) for i in range(5)]
    with torch.no_grad():
        top = model(**processor(images=images, return_tensors="pt")).logits.argmax(-1).tolist()
    assert judge.sees(images) == [t in (1, 2) for t in top]
    with pytest.raises(EraseError, match="not one of"):
        make_judge(str(tmp_path), concept_name="x", labels=["zebra"])


def test_the_originals_latents_reach_a_model_with_another_vae_as_its_own():
    """The relearning and prompt attacks take the original's images as latents. A reference
    retrained with another seed has its own VAE: the latents go through the original's decoder
    and that model's encoder (an attacker holds images). With the original's VAE they are the
    very same tensor, so every erased model's attack is unchanged."""
    import copy

    import torch

    from erase.attacks import conditioning as C
    from erase.embedded.tiny_sd import load_tiny_sd

    original = load_tiny_sd()
    erased = copy.copy(original)  # erasure leaves the VAE as it is
    erased.vae = copy.deepcopy(original.vae)
    latents = C.generate(original, C.encode_prompts(original, ["a photo of zero"] * 2), [1, 2],
                         1.0, 4, output_type="latent")  # fmt: skip
    assert C.same_vae(original, erased) and C.to_latent_space(latents, original, erased) is latents
    with torch.no_grad():  # retrained with the original's seed on another CPU: float error
        for w in erased.vae.parameters():
            w.add_(1e-6 * torch.randn_like(w))
    scale = original.vae.config.scaling_factor  # computed from the latents: float error too
    erased.vae.register_to_config(scaling_factor=scale * (1 + 1.6e-5))
    assert C.to_latent_space(latents, original, erased) is latents
    other = copy.copy(original)  # the same images in a latent space scaled twice as wide
    other.vae = copy.deepcopy(original.vae)
    other.vae.register_to_config(scaling_factor=2 * original.vae.config.scaling_factor)
    assert not C.same_vae(original, other)
    moved = C.to_latent_space(latents, original, other)
    # the codec's round trip is not exact: decoded images agree to its error, not to the bit
    scale = original.vae.config.scaling_factor
    again = original.vae.decode(moved / (2 * scale)).sample
    first = original.vae.decode(latents / scale).sample
    assert (again - first).abs().mean() < 0.1 * first.abs().mean()
    assert moved.shape == latents.shape and not torch.equal(moved, latents)


def test_many_images_in_a_few_calls_are_the_images_one_call_each_gives():
    """``generate_many`` batches (prompt, seed) pairs (a batch that does not divide them
    included): each image keeps its own generator, so it equals the single call's image up to
    float rounding, and the latents' order follows the pairs'."""
    import numpy as np
    import torch

    from erase.attacks import conditioning as C
    from erase.generators import load_generator

    pipe = load_generator(None).pipe
    prompts = [f"a handwritten digit {w}" for w in ("zero", "one", "two", "three", "four")]
    seeds = [3, 1, 4, 1, 5]
    kw = {"guidance_scale": 4.0, "steps": 3}
    one = [
        C.generate(pipe, C.encode_prompts(pipe, [p]), [s], **kw)[0] for p, s in zip(prompts, seeds)
    ]
    many = C.generate_many(pipe, prompts, seeds, batch=2, **kw)
    assert len(many) == 5
    for a, b in zip(one, many):
        diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
        assert diff.max() <= 1  # one grey level: rounding of float32 results at 8 bits
    lat_one = torch.cat(
        [
            C.generate(pipe, C.encode_prompts(pipe, [p]), [s], output_type="latent", **kw)
            for p, s in zip(prompts, seeds)
        ]
    )
    lat_many = C.generate_many(pipe, prompts, seeds, output_type="latent", batch=3, **kw)
    assert lat_many.shape == lat_one.shape
    torch.testing.assert_close(lat_many, lat_one, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(lat_many[0], lat_many[1])  # different prompts and seeds
