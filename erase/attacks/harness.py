"""Running an attack over a concept's prompts × seeds and keeping every image it judged.

One entry per attack kind, all with the same shape: (erased model, original model, concept,
judge) → records whose images lie in ``out/images``. The original's image of each (prompt,
seed) is both the grid's first column and the prompt attacks' target.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..io import save_image
from . import conditioning as C
from . import prompt_attacks as P
from .records import AttackRecord

PROMPT_ATTACKS = ("unlearndiff", "soft_prompt", "concept_inversion")
CURVE_ATTACKS = ("relearn", "benign")
ATTACKS = (*PROMPT_ATTACKS, *CURVE_ATTACKS)


def _save(out: Path, i: int, kind: str, image) -> str:
    rel = f"images/{i:03d}_{kind}.png"
    save_image(image, out / rel)
    return rel


def _gen_kw(gen) -> dict:
    return {"guidance_scale": gen.guidance_scale, "steps": gen.num_inference_steps}


def _baseline(erased, original, prompts, seeds, judge, out, target_latents=None, latents=True):
    """Records with the original's and the erased model's image of each (prompt, seed), the
    judge's verdict on the erased one, and the target latents for the prompt attacks (sampled
    from the original only where no ``target_latents`` replace them). With ``latents=False``
    (relearning trains on images of its own seeds) the erased model's images come back instead:
    a curve's first point, before any fine-tuning, is those very images."""
    kw = _gen_kw(erased)
    pairs = [(p, int(s)) for p in prompts for s in seeds]
    ps, ss = [p for p, _ in pairs], [s for _, s in pairs]
    originals = C.generate_many(original.pipe, ps, ss, **kw)
    erased_images = C.generate_many(erased.pipe, ps, ss, **kw)
    seen = judge.sees(erased_images)
    records = []
    for i, (p, s) in enumerate(pairs):
        r = AttackRecord(prompt=p, seed=s, success_before=seen[i])
        r.original_image = _save(out, i, "original", originals[i])
        r.erased_image = _save(out, i, "erased", erased_images[i])
        records.append(r)
    if not latents:
        return records, erased_images
    if target_latents is not None:  # the user's own images of the concept
        targets = [target_latents[i % len(target_latents)][None] for i in range(len(records))]
        return records, torch.cat(targets)
    return records, C.generate_many(original.pipe, ps, ss, output_type="latent", **kw)


def prompt_attack(
    attack, erased, original, prompts, seeds, judge, out, cfg, attack_all=False, targets=None
) -> tuple[list[AttackRecord], dict]:
    """``unlearndiff`` / ``soft_prompt`` per record, ``concept_inversion`` over all records."""
    records, x0 = _baseline(erased, original, prompts, seeds, judge, out, targets)
    if targets is None:  # the original's latents: in the attacked model's latent space
        x0 = C.to_latent_space(x0, original.pipe, erased.pipe)
    kw = _gen_kw(erased)
    extra = {}
    if attack == "concept_inversion":
        t0 = time.perf_counter()
        emb, info = P.concept_inversion(erased.pipe, [r.prompt for r in records], x0, cfg)
        extra = {"inversion": info, "inversion_seconds": round(time.perf_counter() - t0, 2)}
    for i, r in enumerate(records):
        t0 = time.perf_counter()
        if r.success_before and not attack_all:
            r.image, r.success = r.erased_image, True
            continue
        if attack == "concept_inversion":
            ids = C.token_ids(erased.pipe, [r.prompt], n_slots=1)
            with torch.no_grad():
                cond = C.encode_tokens(erased.pipe, ids, inject=emb[None])
            image = C.generate(erased.pipe, cond, [r.seed], **kw)[0]
            text, ok, info = None, judge.sees([image])[0], {}
        else:
            fn = P.unlearndiff if attack == "unlearndiff" else P.soft_prompt
            text, image, ok, info = fn(erased.pipe, r.prompt, r.seed, x0[i : i + 1], judge, kw, cfg)
        r.adversarial_prompt, r.success = text, bool(ok)
        r.image = _save(out, i, "attacked", image)
        r.extra = {**info, "seconds": round(time.perf_counter() - t0, 2)}
    return records, extra


def relearn_prompts(
    erased,
    original,
    prompts,
    seeds,
    judge,
    out,
    steps,
    n_images,
    lr,
    batch,
    seed=0,
    targets=None,
    train_prompts=None,
    **tune,
):
    """Fine-tune the erased UNet on ``n_images`` of the concept (the original's, for the forget
    prompts, on seeds the evaluation does not use, or the user's) and judge after each s.
    Benign fine-tuning passes other ``train_prompts`` (images: ``targets`` or the original's);
    ``tune`` holds relearn_curve's ``params`` and ``lora_rank``."""
    from ..tasks.concept_erasure import predict_text
    from .relearn import RelearnTask, relearn_curve

    records, before = _baseline(erased, original, prompts, seeds, judge, out, latents=False)
    kw = _gen_kw(erased)
    pipe = erased.pipe
    pool = train_prompts or prompts
    train_prompts = [pool[j % len(pool)] for j in range(n_images)]
    if targets is None:
        seeds_ = [50_000 + j for j in range(len(train_prompts))]
        targets = C.generate_many(original.pipe, train_prompts, seeds_, output_type="latent", **kw)
        targets = C.to_latent_space(targets, original.pipe, pipe)
    cond = C.encode_prompts(pipe, [train_prompts[j % n_images] for j in range(len(targets))])
    task = RelearnTask(targets, cond, predict_text, pipe.scheduler, batch, pipe.device)
    last: dict = {}

    def evaluate(s):
        if s == 0:  # not fine-tuned yet: the baseline's images of the erased model, not again
            images = before
        else:
            ps, ss = [r.prompt for r in records], [r.seed for r in records]
            images = C.generate_many(pipe, ps, ss, **kw)
        last["images"] = images
        _check(judge, last, s, images)
        return judge.sees(images)

    curve = relearn_curve(
        pipe.unet, task, steps, evaluate, out / ".relearn", lr=lr, seed=seed, **tune
    )
    _finish_relearn(records, curve, last, out)
    return records, {"curve": curve, "train_images": len(targets)}


def relearn_classes(
    erased,
    original,
    k,
    n_samples,
    seed,
    judge,
    out,
    steps,
    n_images,
    lr,
    batch,
    targets=None,
    train_labels=None,
    **tune,
):
    """The same for a class-conditional DDPM: class ``k``'s real training images by default;
    benign fine-tuning passes other classes' images as ``targets`` with their ``train_labels``.
    Class ``k``'s samples are judged either way."""
    from ..images import tensor_to_pil
    from ..tasks.class_erasure import predict_class
    from .relearn import RelearnTask, relearn_curve

    labels = [k] * n_samples
    orig = tensor_to_pil(original.generate_classes(labels, seed))
    before = tensor_to_pil(erased.generate_classes(labels, seed))
    verdict = judge.sees(before)
    records = []
    for i in range(n_samples):
        r = AttackRecord(prompt=f"class {k}", seed=seed + i, success_before=verdict[i])
        r.original_image = _save(out, i, "original", orig[i])
        r.erased_image = _save(out, i, "erased", before[i])
        records.append(r)
    if targets is None:
        from ..embedded.digits import digits_split

        split = digits_split(seed=0)
        targets = split.train_images[split.train_labels == k][:n_images]
    cond = torch.full((len(targets),), k) if train_labels is None else train_labels
    cond = cond.long()
    unet = erased.unet
    task = RelearnTask(targets, cond, predict_class, erased.scheduler, batch, unet.device)
    last: dict = {}

    def evaluate(s):
        # at 0 (not fine-tuned yet) the images sampled above, not sampled again
        last["images"] = before if s == 0 else tensor_to_pil(erased.generate_classes(labels, seed))
        _check(judge, last, s, last["images"])
        return judge.sees(last["images"])

    curve = relearn_curve(unet, task, steps, evaluate, out / ".relearn", lr=lr, seed=seed, **tune)
    _finish_relearn(records, curve, last, out)
    return records, {"curve": curve, "train_images": len(targets)}


def _check(judge, last: dict, s: int, images) -> None:
    """The second judge's share of the same images at point ``s`` (when one is set)."""
    if judge.check is not None:
        seen = judge.check.sees(images)
        last.setdefault("check", {})[s] = sum(seen) / len(seen)


def _finish_relearn(records, curve, last, out):
    for i, (r, im) in enumerate(zip(records, last["images"])):
        r.image = _save(out, i, "attacked", im)
        r.success = curve[-1]["seen"][i]
    for point in curve:  # per-record verdicts are in the records; keep the curve short
        point.pop("seen")
        if "check" in last:
            point["check_share"] = last["check"][point["steps"]]
