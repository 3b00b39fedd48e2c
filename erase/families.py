"""Pipeline families: how prompts become UNet conditions, how the UNet is called with them, and
which diffusers pipeline class loads and saves the model.

The family is read once from ``model_index.json`` (``_class_name``); the tasks, losses, the meta
step and the trainer only ever see a :class:`TextCond` and call ``unet(x, t, **cond.unet_kwargs())``,
so they never ask which family they run on. SDXL's UNet takes, next to the cross-attention
states of its two text encoders, the pooled embedding of the second one and six
micro-conditioning numbers (original size, crop corner, target size) — its ``text_time``
added conditioning; SD 1.x/2.x take the cross-attention states alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import EraseError


@dataclass
class TextCond:
    """Prompt conditions of a text-to-image UNet, batched on the first dimension.

    Behaves like a tensor where the tasks need it (indexing, ``to``, ``expand``, ``shape``), so
    a pool of prompts is indexed by prompt and a batch is sliced per process the same way for
    every family.
    """

    embeds: torch.Tensor  # [B, L, D] cross-attention states
    pooled: torch.Tensor | None = None  # [B, P] SDXL: pooled text embedding
    time_ids: torch.Tensor | None = None  # [B, 6] SDXL: size/crop micro-conditioning

    def _map(self, fn) -> TextCond:
        return TextCond(
            *(None if v is None else fn(v) for v in (self.embeds, self.pooled, self.time_ids))
        )

    def __getitem__(self, idx) -> TextCond:
        return self._map(lambda v: v[idx])

    def __len__(self) -> int:
        return len(self.embeds)

    @property
    def shape(self) -> torch.Size:
        return self.embeds.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.embeds.dtype

    def to(self, *args, **kwargs) -> TextCond:
        return self._map(lambda v: v.to(*args, **kwargs))

    def float(self) -> TextCond:
        return self._map(lambda v: v.float())

    def cpu(self) -> TextCond:
        return self._map(lambda v: v.cpu())

    def clone(self) -> TextCond:
        return self._map(lambda v: v.clone())

    def expand(self, n: int, *_rest) -> TextCond:
        """``n`` copies along the batch (the trailing sizes of ``Tensor.expand`` are implied)."""
        return self._map(lambda v: v.expand(n, *v.shape[1:]))

    def unet_kwargs(self) -> dict:
        kw = {"encoder_hidden_states": self.embeds}
        if self.pooled is not None:
            kw["added_cond_kwargs"] = {"text_embeds": self.pooled, "time_ids": self.time_ids}
        return kw


def cat_conds(conds: Sequence) -> torch.Tensor | TextCond:
    """Concatenate conditions along the batch: class labels (tensors) or :class:`TextCond`."""
    if isinstance(conds[0], TextCond):
        fields = zip(*((c.embeds, c.pooled, c.time_ids) for c in conds))
        return TextCond(*(None if f[0] is None else torch.cat(f) for f in fields))
    return torch.cat(list(conds))


def unet_call_kwargs(cond) -> dict:
    """The keyword arguments that condition a text UNet on ``cond`` (a TextCond or, as older
    callers pass, the cross-attention states alone)."""
    if isinstance(cond, TextCond):
        return cond.unet_kwargs()
    return {"encoder_hidden_states": cond}


@dataclass(frozen=True)
class Family:
    """One pipeline family: its diffusers class, the components it needs, its text encoders."""

    name: str
    pipeline_class: str
    components: tuple[str, ...]
    text_encoders: tuple[str, ...]
    load_kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def pipeline_cls(self):
        import diffusers

        return getattr(diffusers, self.pipeline_class)

    def default_resolution(self, pipe) -> int:
        """The UNet's native image size: 512 for SD 1.x, 768 for SD 2.x-v, 1024 for SDXL."""
        return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)

    def encoder_modules(self, pipe) -> list:
        return [getattr(pipe, n) for n in self.text_encoders if getattr(pipe, n, None) is not None]

    @torch.no_grad()
    def encode(self, pipe, prompts: list[str], device, resolution: int) -> TextCond:
        emb, _ = pipe.encode_prompt(prompts, device, 1, False)
        return TextCond(emb.float().cpu())

    @torch.no_grad()
    def null(self, pipe, device, resolution: int) -> TextCond:
        """The unconditional condition, as the pipeline's classifier-free guidance uses it."""
        return self.encode(pipe, [""], device, resolution)


class XLFamily(Family):
    """SDXL: two text encoders, the pooled embedding and ``text_time`` micro-conditioning."""

    @torch.no_grad()
    def encode(self, pipe, prompts: list[str], device, resolution: int) -> TextCond:
        emb, _, pooled, _ = pipe.encode_prompt(
            prompt=list(prompts),
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
        return TextCond(
            emb.float().cpu(), pooled.float().cpu(), self._time_ids(pipe, len(prompts), resolution)
        )

    @staticmethod
    def _time_ids(pipe, n: int, resolution: int) -> torch.Tensor:
        """(original size, crop top-left, target size) as the pipeline builds them for an
        uncropped square image at ``resolution``; checked against the UNet's embedding width."""
        ids = [resolution, resolution, 0, 0, resolution, resolution]
        unet = pipe.unet
        proj = (
            pipe.text_encoder_2.config.projection_dim
            if getattr(pipe, "text_encoder_2", None) is not None
            else None
        )
        expected = getattr(getattr(unet, "add_embedding", None), "linear_1", None)
        if proj is not None and expected is not None:
            passed = unet.config.addition_time_embed_dim * len(ids) + proj
            if passed != expected.in_features:
                raise EraseError(
                    f"this SDXL UNet expects an added embedding of {expected.in_features} values "
                    f"but its config and text_encoder_2 give {passed}; the folder mixes "
                    "components of different models"
                )
        return torch.tensor([ids], dtype=torch.float32).expand(n, len(ids)).clone()

    @torch.no_grad()
    def null(self, pipe, device, resolution: int) -> TextCond:
        # SDXL's guidance uses zeros for an empty negative prompt (force_zeros_for_empty_prompt)
        cond = self.encode(pipe, [""], device, resolution)
        if getattr(pipe.config, "force_zeros_for_empty_prompt", False):
            cond = TextCond(
                torch.zeros_like(cond.embeds), torch.zeros_like(cond.pooled), cond.time_ids
            )
        return cond


_SD_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
FAMILIES = {
    "StableDiffusionPipeline": Family(
        "sd",
        "StableDiffusionPipeline",
        _SD_PARTS,
        ("text_encoder",),
        (("safety_checker", None), ("requires_safety_checker", False)),
    ),
    "StableDiffusionXLPipeline": XLFamily(
        "sdxl",
        "StableDiffusionXLPipeline",
        (*_SD_PARTS, "text_encoder_2", "tokenizer_2"),
        ("text_encoder", "text_encoder_2"),
    ),
}


def family_for_index(index: dict, where: str) -> Family:
    """The family of a pipeline folder's ``model_index.json``, or one clear error."""
    name = index.get("_class_name")
    if name not in FAMILIES:
        raise EraseError(
            f"{where} is a {name or 'folder of unknown class'}; erase_concept supports "
            f"{' and '.join(FAMILIES)} (SD 1.x, SD 2.x, SDXL) — for class-conditional "
            "UNet2DModel folders use erase_class.py"
        )
    family = FAMILIES[name]
    missing = [c for c in family.components if not index.get(c) or None in index[c]]
    if missing:
        raise EraseError(f"{where} is a {name} without {missing}; pass a complete pipeline folder")
    return family


def family_of(pipe) -> Family:
    """The family of a loaded pipeline (by its class, or the class it was saved as)."""
    for cls in type(pipe).__mro__:
        if cls.__name__ in FAMILIES:
            return FAMILIES[cls.__name__]
    raise EraseError(f"{type(pipe).__name__} is not a supported text-to-image pipeline family")
