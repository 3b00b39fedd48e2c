"""The method registry: one trainer, one data pipeline, one budget; methods differ only here.

A method is a forget loss, a retain loss, a gradient rule and whether a saliency mask gates
the update. Defaults follow the papers each baseline comes from; every field can be
overridden from the command line so that comparisons can also be made like for like.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .choices import ANCHOR_WITH_RETAIN_FIRST
from .errors import EraseError

# what --help says of lur: the meta-gradient of Patel & Qiu, in the order the forms comparison chose
LUR_SUMMARY = (
    "meta-gradient of Patel & Qiu (2025); by default the look-ahead is a retain step and "
    "forgetting is judged after it (--meta_order forget_first: the paper's retain-after-forget)"
)
RULES = ("meta", "joint", "pcgrad", "meta-relearn", "meta-resist", "meta-adv", "closed_form")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    forget_loss: str
    retain_loss: str | None
    rule: str
    saliency: bool = False
    retain_weight: float = 1.0
    # α = this × the learning rate unless --inner_lr is given: one Adam-sized look-ahead step.
    # Chosen on the tuning digits 2 and 4 (class) and on "five"/"outlined" (concepts); at 2 × and
    # 3 × lr the retain gradient at θ' cancels the forget gradient, the weights drift into a sharp
    # region (gradient norms ×5) and the remaining digits' FID rises to 1.7–2.1× the original's.
    inner_lr_scale: float = 1.0
    # "anchor": the forget batch's images are the anchor's, prompted with the concept (CA)
    forget_data: str = "concept"
    train_params: str | None = None  # the method's own default trainable set, if it has one
    resist_steps: int = 3  # lur-resist: K simulated attacker steps (--resist_steps)
    resist_every: int = 1  # lur-resist: the attack is simulated every N-th step (--resist_every)
    resist_weight: float = 1.0  # lur-resist: w, the forget loss at the relearned weights
    # the meta step's order (--meta_order): which loss takes the look-ahead step
    meta_order: str = "forget_first"
    # the stopping rule stops no run of this method before this step (--min_train_steps): a
    # resisting erasure keeps hardening after its judge says the concept is gone
    min_train_steps: int = 0
    summary: str = ""

    def with_overrides(self, **kw) -> MethodSpec:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


# Class erasure (class-conditional DDPM): the forget loss maps the class to a random other
# class ("random label", as SalUn); retain is the ordinary denoising loss on the other classes.
CLASS_METHODS = {
    "lur": MethodSpec(
        "lur",
        "anchor",
        "denoise",
        "meta",
        # The default form, chosen at equal erasure (95 %) on the tuning digits 1, 2 and 4 by
        # benchmarks/_lur_form.FORM_RULE among lur's seven forms: the look-ahead takes a retain
        # step and forgetting is judged after it. Kept 97.2 % of the other digits at 283 lur
        # steps; the paper's order (--meta_order forget_first) kept 95.0 %, 89.4 % on digit 1.
        # λ = 2 is that form's operating point on the frontier's sweep (λ ∈ {0.5, 1, 2, 4}).
        retain_weight=2.0,
        meta_order="retain_first",
        summary=LUR_SUMMARY,
    ),
    "lur-relearn": MethodSpec(
        "lur-relearn",
        "anchor",
        "denoise",
        "meta-relearn",
        retain_weight=0.5,
        summary="lur + forget loss after a simulated relearning step (erase.robust_step); "
        "2 extra forward/backward passes a step",
    ),
    # K = 6 attacker steps at its rate 1e-4, w = 1, λ = 2: chosen on the tuning digit 2 among
    # (K, rate, w, λ) = (3, 1e-4, 1, 0.5), (6, 1e-4, 0.5, 0.5), (3, 5e-4, 1, 0.5), (3, 1e-4, 1, 1),
    # (6, 1e-4, 1, 1), (6, 1e-4, 1, 2) by the rule "kept within 2 points of lur's, then the least
    # back after 5 relearning steps": at λ = 0.5 the added forget term cost 3-22 points of the
    # other digits, and K = 6 at λ = 1 cost 7; K = 6, λ = 2 kept 98.4 % (lur 96.9 %) with 32 %
    # back after 5 steps (K = 3, λ = 1: 50 %; lur 76 %; a model that never saw a 2: 28 %).
    # Then, for the cost (3.87× a lur step): the attack simulated on every 2nd step, w doubled
    # to keep its pull (N = 2, w = 2), matched it on digit 2 — kept 98.2 %, back 32/70/84 %
    # after 5/10/20 steps against 32/70/82 % — at about 2.4× a lur step; N = 2, w = 1 let
    # 52/80/84 % back.
    "lur-resist": MethodSpec(
        "lur-resist",
        "anchor",
        "denoise",
        "meta-resist",
        retain_weight=2.0,
        resist_steps=6,
        resist_every=2,
        resist_weight=2.0,
        # trained at least 300 steps (2 × the budget), erased or not. On the tuning digit 2,
        # stopped at the target (step 50): back 32/70/84 % after 5/10/20 relearning steps; at
        # least 150 steps: 14/54/84; 300: 8/30/80 (never saw a 2: 28/58/76). None of the floors
        # tried gets under the reference at 20 steps; 300 comes closest (the rule of the
        # concept task's floor, which also met it at 20 steps).
        min_train_steps=300,
        summary="lur + forget loss after K simulated AdamW relearning steps (Meta-Unlearning "
        "style, erase.resist_step), on every 2nd step; 3 + (K + 1) / 2 forward/backward "
        "passes a step; trains at least 300 steps (--min_train_steps)",
    ),
    "joint": MethodSpec(
        "joint",
        "anchor",
        "denoise",
        "joint",
        summary="L_f + λ L_r at the same weights (the naive objective)",
    ),
    "ga": MethodSpec(
        "ga",
        "ga",
        None,
        "joint",
        retain_weight=0.0,
        summary="bounded gradient ascent on the forget class, no retain term",
    ),
    "salun": MethodSpec(
        "salun",
        "anchor",
        "denoise",
        "joint",
        saliency=True,
        summary="random label + retain, updates gated by a weight-saliency mask",
    ),
    "pcgrad": MethodSpec(
        "pcgrad",
        "anchor",
        "denoise",
        "pcgrad",
        summary="explicit projection of conflicting gradients (PCGrad / LTU)",
    ),
    "esd": MethodSpec(
        "esd",
        "esd",
        None,
        "joint",
        retain_weight=0.0,
        summary="negative guidance onto the null class (ESD), no retain term",
    ),
}

# Concept erasure (text-to-image): the forget loss "auto" maps the concept onto its anchor when
# the concept names one (a style onto the same content without the style; nudity onto clothed)
# and uses ESD's negative guidance when it does not (an object, a digit: nothing to map to).
# Chosen on the embedded style 'outlined': ESD's target pushes away from the whole prompt, content
# included, and left 90 % of outlined images outlined after 100 steps; the anchor mapping, 0 %.
# Retain distils the frozen original on retain prompts (needs no data).
# λ = 3: chosen on the embedded digit 'three' (λ = 1 cost the other digits 9 points).
# α = 1 × lr for concepts too: chosen on the digit 'five' and the style 'outlined' (α = 3 × lr
# erased both as well — 2.5 % / 0 % left vs 2.5 % / 5 % — but kept 0.8 and 1.0 point less of
# the other digits).
AUTO = "auto"
CONCEPT_METHODS = {
    "lur": MethodSpec(
        "lur",
        AUTO,
        "preserve",
        "meta",
        # the default form as for classes, chosen on "five" and "outlined" (kept 97.4 % at 138
        # lur steps); λ = 3 is its operating point there, as it was the paper's order's
        retain_weight=3.0,
        meta_order="retain_first",
        summary=LUR_SUMMARY,
    ),
    "lur-relearn": MethodSpec(
        "lur-relearn",
        AUTO,
        "preserve",
        "meta-relearn",
        retain_weight=3.0,
        summary="lur + forget loss after a simulated relearning step (erase.robust_step); "
        "2 extra forward/backward passes a step",
    ),
    # K = 6, N = 2, w = 2 (the class task's simulated attack), λ = 3: chosen on the tuning word
    # "five" against K = 3, w = 1 and K = 3, w = 3 (every step), by the class task's rule (kept
    # within 2 points of lur's, then the least back after 5 relearning steps): kept 99.6 % (lur
    # 97.9 %), back 8/30/78 % after 5/10/20 steps against 26/54/90 and 22/56/92 %, and a model
    # that never saw "five" 14/34/66 %. On the style "outlined" (measured after) both stop at step
    # 25 and come back at once (100 and 90 % after 5 steps; the reference 34 %): over the two
    # tuning concepts this one still has the lower mean, 54 against 58 %, inside the noise.
    "lur-resist": MethodSpec(
        "lur-resist",
        AUTO,
        "preserve",
        "meta-resist",
        retain_weight=3.0,
        resist_steps=6,
        resist_every=2,
        resist_weight=2.0,
        # trained at least 400 steps (the cap), erased or not: the smallest floor tried (none,
        # 100, 200, 400) whose runs on both tuning concepts come back no faster than a model that
        # never saw them after 5, 10 and 20 relearning steps, kept within 2 points of lur's.
        # "outlined", stopped at its first check (step 25): back 100/100/100 %; 200 steps:
        # 4/52/98; 400: 0/14/80 (never saw it: 34/82/90). "five" at 400: 8/20/58 (14/34/66).
        min_train_steps=400,
        summary="lur + forget loss after K simulated AdamW relearning steps (Meta-Unlearning "
        "style, erase.resist_step), on every 2nd step; 3 + (K + 1) / 2 forward/backward "
        "passes a step; trains at least 400 steps (--min_train_steps)",
    ),
    "lur-adv": MethodSpec(
        "lur-adv",
        AUTO,
        "preserve",
        "meta-adv",
        retain_weight=3.0,
        summary="lur with the forget loss at the worst nearby prompt embedding "
        "(erase.robust_step); 1 extra forward/backward a step",
    ),
    "joint": MethodSpec(
        "joint",
        AUTO,
        "preserve",
        "joint",
        retain_weight=3.0,
        summary="L_f + λ L_r at the same weights (the naive objective)",
    ),
    "esd": MethodSpec(
        "esd",
        "esd",
        None,
        "joint",
        retain_weight=0.0,
        summary="Erased Stable Diffusion (Gandikota et al., 2023)",
    ),
    "salun": MethodSpec(
        "salun",
        "anchor",
        "preserve",
        "joint",
        saliency=True,
        retain_weight=3.0,
        summary="anchor mapping + retain, gated by a weight-saliency mask",
    ),
    "ga": MethodSpec(
        "ga",
        "ga",
        None,
        "joint",
        retain_weight=0.0,
        summary="bounded gradient ascent on the concept's images",
    ),
    "pcgrad": MethodSpec(
        "pcgrad",
        AUTO,
        "preserve",
        "pcgrad",
        retain_weight=3.0,
        summary="explicit projection of conflicting gradients (PCGrad / LTU)",
    ),
    # UCE: no training loop; attn2.to_k/to_v edited in closed form (erase/uce.py). The concept's
    # anchor is the guide ("" when it names none); retain_weight is its preservation scale s_p.
    "uce": MethodSpec(
        "uce",
        "anchor",
        "preserve",
        "closed_form",
        retain_weight=1.0,
        summary="Unified Concept Editing: closed-form edit of attn2.to_k/to_v "
        "(Gandikota et al., 2024)",
    ),
    # Concept Ablation (Kumari et al., 2023) on the cross-attention: images of the anchor,
    # prompted with the concept, regress onto the anchor's prediction (model-based; CA takes it
    # from the model under training with stop-gradient, here from the frozen original, as
    # SalUn's mapping) or onto their own noise (noise-based); retention as the other methods.
    "ca": MethodSpec(
        "ca",
        "anchor",
        "preserve",
        "joint",
        retain_weight=1.0,
        forget_data="anchor",
        train_params="xattn",
        summary="Concept Ablation, model-based: concept → anchor on anchor images (Kumari et al., 2023)",
    ),
    "ca-noise": MethodSpec(
        "ca-noise",
        "noise",
        "preserve",
        "joint",
        retain_weight=1.0,
        forget_data="anchor",
        train_params="xattn",
        summary="Concept Ablation, noise-based: denoise anchor images under the concept's prompt",
    ),
}


def resolve_forget_loss(spec: MethodSpec, has_anchor: bool) -> MethodSpec:
    """``auto`` → ``anchor`` when the concept names an anchor, else ``esd``."""
    if spec.forget_loss != AUTO:
        return spec
    return replace(spec, forget_loss="anchor" if has_anchor else "esd")


def with_flag_overrides(spec: MethodSpec, args) -> MethodSpec:
    """The spec with the command line's overrides (a flag left at None keeps the method's own),
    checked: λ₀ L_r(θ) is defined for the forget-first objective only, and ``lur`` defaults to
    the other order, so the error says which flag to add."""
    spec = spec.with_overrides(
        forget_loss=args.forget_loss,
        retain_loss=args.retain_loss,
        retain_weight=args.retain_weight,
        resist_steps=args.resist_steps,
        resist_every=args.resist_every,
        resist_weight=args.resist_weight,
        meta_order=args.meta_order,
    )
    if getattr(args, "retain_weight_at_theta", 0) and spec.meta_order == "retain_first":
        raise EraseError(ANCHOR_WITH_RETAIN_FIRST)
    return spec


def get_method(name: str, registry: dict[str, MethodSpec]) -> MethodSpec:
    if name not in registry:
        raise EraseError(f"unknown method {name!r}; choose one of: {', '.join(registry)}")
    return registry[name]
