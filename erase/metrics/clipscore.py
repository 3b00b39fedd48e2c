"""CLIPScore = 100 · max(cos(image embedding, text embedding), 0), averaged over pairs.

We compute it from the embeddings ourselves: torchmetrics' ``CLIPScore`` breaks on
transformers 5 (``get_image_features`` returns an output object there). Three backends:

- ``transformers``: any local ``CLIPModel`` folder (or a hub id where you are online);
- ``open_clip``: an open_clip architecture plus a local checkpoint file;
- ``tiny``: the embedded world's small CLIP-style model (offline default). It is a real
  contrastive image–text model, trained (about 30 CPU-seconds on one thread,
  ``python -m erase.metrics.clipscore``, seed 0) on the real
  scikit-learn digits rendered in the embedded styles with the embedded prompts, and committed
  as ``erase/assets/tiny_clip.safetensors``. Its text side is a bag of words over the embedded
  world's vocabulary, so it scores "a handwritten digit three [in inverted style]" and
  "a handwritten digit in inverted style" alike; unknown words are ignored. Its scores are
  comparable only with each other, never with a real CLIP's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import EraseError

TINY_CLIP_ASSET = "tiny_clip.safetensors"
EMBED_DIM = 64


def clip_score_from_embeddings(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Per-pair CLIPScore ``[N]``: 100·max(cos, 0) of row-aligned image and text embeddings."""
    if image_emb.shape != text_emb.shape:
        raise EraseError(
            f"need one caption per image: {image_emb.shape[0]} images, {text_emb.shape[0]} captions"
        )
    cos = F.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
    return 100.0 * cos.clamp(min=0)


# -- the embedded world's tiny CLIP ----------------------------------------------------------


def _vocabulary() -> list[str]:
    from ..embedded.styles import DIGIT_WORDS, STYLES

    words = ["a", "handwritten", "digit", "in", "style"] + list(DIGIT_WORDS) + list(STYLES)
    return ["<unk>"] + sorted(set(words))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class TinyCLIP(nn.Module):
    """A CNN image tower on 16×16 grey images and a bag-of-words text tower, both to 64-d."""

    def __init__(self, vocab: Sequence[str] | None = None, width: int = 32):
        super().__init__()
        self.vocab = list(vocab or _vocabulary())
        self._index = {w: i for i, w in enumerate(self.vocab)}
        self.image_tower = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 128),
            nn.GELU(),
            nn.Linear(128, EMBED_DIM),
        )
        self.word_embed = nn.EmbeddingBag(len(self.vocab), 128, mode="sum", padding_idx=0)
        self.text_proj = nn.Sequential(nn.GELU(), nn.Linear(128, EMBED_DIM))
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, offsets = [], []
        for t in texts:
            offsets.append(len(ids))
            toks = [self._index.get(w, 0) for w in _words(t)] or [0]
            ids.extend(toks)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        ids, offsets = self.tokenize(texts)
        dev = self.word_embed.weight.device
        return self.text_proj(self.word_embed(ids.to(dev), offsets.to(dev)))

    def encode_image(self, images) -> torch.Tensor:
        from ..embedded.judge import to_judge_input

        x = to_judge_input(images, device=self.word_embed.weight.device)
        return self.image_tower(x)


def _tiny_captions():
    """All captions of the embedded world, grouped: full (digit+style), digit only, style only."""
    from ..embedded.styles import DIGIT_WORDS, STYLES, digit_prompt, style_only_prompt, style_prompt

    full = [style_prompt(d, s) for s in STYLES for d in range(len(DIGIT_WORDS))]
    digit = [digit_prompt(d) for d in range(len(DIGIT_WORDS))]
    style = [style_only_prompt(s) for s in STYLES]
    return full, digit, style


def train_tiny_clip(seed: int = 0, steps: int = 600, batch_size: int = 128, lr: float = 3e-3):
    """Train :class:`TinyCLIP` on real styled digits; returns ``(model, metrics)``.

    The loss is CLIP's image→text cross-entropy, taken over each caption family separately
    (an image of an inverted three must pick its full caption among the 50, "digit three"
    among the 10 digit captions, "inverted style" among the 5 style captions) plus the
    text→image direction inside the batch for full captions. Taking it per family avoids
    treating a correct partial caption as a negative.
    """
    from ..embedded.judge import styled_digits
    from ..embedded.styles import DIGIT_WORDS

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, d, s = styled_digits("train", seed=0)
    n_digits = len(DIGIT_WORDS)
    full, digit, style = _tiny_captions()
    model = TinyCLIP()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        xb = _augment(x[idx], gen)
        img = F.normalize(model.encode_image(xb), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        t_full = F.normalize(model.encode_text(full), dim=-1)
        t_digit = F.normalize(model.encode_text(digit), dim=-1)
        t_style = F.normalize(model.encode_text(style), dim=-1)
        y_full = s[idx] * n_digits + d[idx]
        loss = F.cross_entropy(scale * img @ t_full.T, y_full)
        loss = loss + F.cross_entropy(scale * img @ t_digit.T, d[idx])
        loss = loss + F.cross_entropy(scale * img @ t_style.T, s[idx])
        # text→image: each full caption in the batch picks (one of) its images
        sim = scale * t_full[y_full] @ img.T
        same = y_full[:, None] == y_full[None, :]
        loss = (
            loss
            + (torch.logsumexp(sim, 1) - torch.logsumexp(sim.masked_fill(~same, -1e4), 1)).mean()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return model, tiny_clip_accuracy(model)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts of up to 1 px, contrast jitter and pixel noise, so generated images stay in range."""
    n, size = x.shape[0], x.shape[-1]
    pad = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2,), generator=gen).tolist()
    x = pad[..., dy : dy + size, dx : dx + size]
    x = x * (1.0 + 0.15 * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1))
    return x + 0.08 * torch.randn(x.shape, generator=gen)


@torch.no_grad()
def tiny_clip_accuracy(model: TinyCLIP) -> dict:
    """Zero-shot retrieval accuracy on held-out real digits (full, digit and style captions)."""
    from ..embedded.judge import styled_digits
    from ..embedded.styles import DIGIT_WORDS

    x, d, s = styled_digits("test", seed=0)
    full, digit, style = _tiny_captions()
    img = F.normalize(model.encode_image(x), dim=-1)
    out = {}
    for name, caps, y in (
        ("full", full, s * len(DIGIT_WORDS) + d),
        ("digit", digit, d),
        ("style", style, s),
    ):
        t = F.normalize(model.encode_text(caps), dim=-1)
        out[f"{name}_caption_accuracy"] = ((img @ t.T).argmax(1) == y).float().mean().item()
    out["n_images"] = len(x)
    return out


def save_tiny_clip(model: TinyCLIP, path: str | os.PathLike, metrics: dict | None = None) -> None:
    from safetensors.torch import save

    from ..io import atomic_write_bytes

    meta = {"vocab": " ".join(model.vocab), "embed_dim": str(EMBED_DIM)}
    meta.update({k: str(v) for k, v in (metrics or {}).items()})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata=meta))


def tiny_clip_path() -> Path:
    """The committed asset; trained and cached (about a minute on CPU) if it is missing."""
    from ..embedded.digits import ASSETS_DIR, writable_asset_location

    committed = ASSETS_DIR / TINY_CLIP_ASSET
    if committed.exists():
        return committed
    target = writable_asset_location(TINY_CLIP_ASSET)
    if not target.exists():
        model, metrics = train_tiny_clip()
        save_tiny_clip(model, target, metrics)
    return target


def load_tiny_clip(path: str | os.PathLike | None = None) -> TinyCLIP:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else tiny_clip_path()
    if not path.is_file():
        raise EraseError(f"tiny CLIP weights {str(path)!r} not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            vocab = (fh.metadata() or {}).get("vocab", "").split(" ")
        model = TinyCLIP(vocab=vocab if len(vocab) > 1 else None)
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise EraseError(
            f"cannot load tiny CLIP weights {str(path)!r} ({exc.__class__.__name__}); delete the "
            "file and rerun to retrain it"
        ) from None
    return model.eval()


# -- backends ------------------------------------------------------------------------------


class ClipBackend:
    """Encodes images (PIL) and texts into one embedding space; ``name`` goes into reports."""

    name: str = "clip"

    def encode_images(self, images: Sequence) -> torch.Tensor:
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError


class TinyClipBackend(ClipBackend):
    def __init__(self, path: str | os.PathLike | None = None):
        self.model = load_tiny_clip(path)
        self.name = f"tiny-clip (embedded digits world, {TINY_CLIP_ASSET})"

    @torch.no_grad()
    def encode_images(self, images):
        return self.model.encode_image(list(images))

    @torch.no_grad()
    def encode_texts(self, texts):
        return self.model.encode_text(list(texts))


class TransformersClipBackend(ClipBackend):
    """A ``transformers.CLIPModel`` (local folder, or a hub id when online).

    We call the vision/text towers and their projections directly: that is CLIP's definition
    of the embeddings and it does not depend on what ``get_*_features`` returns in a given
    transformers version.
    """

    def __init__(self, model: str, device: str = "cpu"):
        from transformers import CLIPModel, CLIPProcessor

        local = Path(model).is_dir()
        try:
            self.model = CLIPModel.from_pretrained(model, local_files_only=local).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(model, local_files_only=local)
        except (OSError, ValueError) as exc:
            hint = (
                "it is not a local folder and the hub cannot be reached"
                if not local
                else "the folder is not a CLIPModel with its processor"
            )
            raise EraseError(
                f"cannot load CLIP model {model!r}: {hint} ({str(exc).splitlines()[0]})"
            ) from None
        self.device = device
        self.name = f"transformers CLIPModel {model}"

    @torch.no_grad()
    def encode_images(self, images):
        pix = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        out = self.model.vision_model(pixel_values=pix["pixel_values"].to(self.device))
        return self.model.visual_projection(out.pooler_output)

    @torch.no_grad()
    def encode_texts(self, texts):
        tok = self.processor(
            text=list(texts), return_tensors="pt", padding=True, truncation=True, max_length=77
        )
        out = self.model.text_model(
            input_ids=tok["input_ids"].to(self.device),
            attention_mask=tok["attention_mask"].to(self.device),
        )
        return self.model.text_projection(out.pooler_output)


class OpenClipBackend(ClipBackend):
    """An open_clip architecture with a local checkpoint (``pretrained=`` a file path)."""

    def __init__(self, arch: str, checkpoint: str | None, device: str = "cpu"):
        import open_clip

        if checkpoint is not None and not Path(checkpoint).is_file():
            raise EraseError(f"open_clip checkpoint {checkpoint!r} does not exist")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch,
                pretrained=checkpoint,
                device=device,
                require_pretrained=checkpoint is not None,
            )
            self.tokenizer = open_clip.get_tokenizer(arch)
        except RuntimeError as exc:
            raise EraseError(
                f"cannot build open_clip model {arch!r} from {checkpoint!r}: {str(exc).splitlines()[0]}"
            ) from None
        self.model, self.preprocess, self.device = model.eval(), preprocess, device
        self.name = f"open_clip {arch} ({Path(checkpoint).name if checkpoint else 'random init'})"

    @torch.no_grad()
    def encode_images(self, images):
        x = torch.stack([self.preprocess(im.convert("RGB")) for im in images]).to(self.device)
        return self.model.encode_image(x)

    @torch.no_grad()
    def encode_texts(self, texts):
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


def load_clip_backend(
    clip_model: str | None = None,
    *,
    backend: str = "auto",
    checkpoint: str | None = None,
    device: str = "cpu",
) -> ClipBackend:
    """``clip_model`` None → the embedded tiny CLIP; a folder → transformers; ``backend`` to force."""
    if backend == "auto":
        if clip_model is None:
            backend = "tiny"
        elif checkpoint is not None:
            backend = "open_clip"
        else:
            backend = "transformers"
    if backend == "tiny":
        return TinyClipBackend(checkpoint)
    if backend == "transformers":
        if clip_model is None:
            raise EraseError("--clip_model is required for the transformers backend")
        return TransformersClipBackend(clip_model, device=device)
    if backend == "open_clip":
        if clip_model is None:
            raise EraseError("--clip_model (an open_clip architecture, e.g. ViT-B-32) is required")
        return OpenClipBackend(clip_model, checkpoint, device=device)
    raise EraseError(f"unknown CLIP backend {backend!r}; choose tiny, transformers or open_clip")


def clip_scores(
    backend: ClipBackend, images: Sequence, captions: Sequence[str], batch_size: int = 32
) -> torch.Tensor:
    """Per-image CLIPScore ``[N]`` for row-aligned images and captions."""
    if len(images) != len(captions):
        raise EraseError(
            f"need one caption per image: {len(images)} images, {len(captions)} captions"
        )
    if not len(images):
        raise EraseError("no images to score")
    out = []
    for i in range(0, len(images), batch_size):
        im = backend.encode_images(images[i : i + batch_size])
        tx = backend.encode_texts(captions[i : i + batch_size])
        out.append(clip_score_from_embeddings(im.cpu(), tx.cpu()))
    return torch.cat(out)


def clip_score(backend: ClipBackend, images: Sequence, captions: Sequence[str], **kw) -> float:
    """Mean CLIPScore over the pairs."""
    return clip_scores(backend, images, captions, **kw).mean().item()


if __name__ == "__main__":  # regenerate the committed asset (deterministic for a given torch)
    from ..embedded.digits import ASSETS_DIR

    torch.set_num_threads(1)  # small convolutions: one thread is fastest and reproducible
    _model, _metrics = train_tiny_clip()
    save_tiny_clip(_model, ASSETS_DIR / TINY_CLIP_ASSET, _metrics)
    print(_metrics)
