"""Prompt attacks: UnlearnDiffAtk's adversarial tokens, soft prompts and concept inversion.

All three minimise one loss, the attacked model's own denoising MSE on latents of target
images of the concept (``conditioning.denoising_loss``): a condition under which the erased
UNet still denoises images of the concept well is one under which it can draw them again.
They differ only in what is optimised: discrete tokens (a real prompt), free embeddings (an
upper bound on prompt attacks), or one new word shared by every prompt (textual inversion).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch

from . import conditioning as C


@dataclass
class PromptAttackConfig:
    """UnlearnDiffAtk's settings (DESIGN §11); ``tokens`` is k (5 for nudity, 3 otherwise)."""

    tokens: int = 3
    lr: float = 0.01
    weight_decay: float = 0.1
    iterations: int = 40  # per timestep of the schedule
    timesteps: int = 5  # schedule length, high noise to low
    batch: int = 1  # noise draws per iteration
    early_stop: bool = True
    seed: int = 0
    # "adamw": decoupled decay (default); "adam": L2 added to the gradient, as UnlearnDiffAtk's
    # code. On the tiny world the denoising gradient is ~1e-4 and a coupled 0.1·w swamps it, so
    # Adam's normalised step follows the decay alone and the attack never moves.
    optimizer: str = "adamw"

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_schedule(scheduler, n: int) -> list[int]:
    """``n`` timesteps evenly spaced from high noise to low (e.g. 833, 666, 500, 333, 166)."""
    total = scheduler.config.num_train_timesteps
    return [int(total * (n - i) / (n + 1)) for i in range(n)]


@functools.lru_cache(maxsize=4)
def _allowed_ids(tokenizer) -> tuple[int, ...]:
    """Whole-word alphabetic tokens: a user can type them and they tokenize back to themselves."""
    out = []
    for text, i in tokenizer.get_vocab().items():
        word = text[:-4] if text.endswith("</w>") else None
        if word and len(word) > 1 and word.isascii() and word.isalpha():
            out.append(i)
    return tuple(sorted(out))


def allowed_token_ids(pipe) -> torch.Tensor:
    return torch.tensor(_allowed_ids(pipe.tokenizer))


def project_simplex(w: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row onto the probability simplex (Duchi et al., 2008)."""
    u, _ = torch.sort(w, dim=-1, descending=True)
    css = u.cumsum(-1) - 1.0
    k = torch.arange(1, w.shape[-1] + 1, device=w.device, dtype=w.dtype)
    rho = (u - css / k > 0).sum(-1, keepdim=True)
    tau = css.gather(-1, rho - 1) / rho.to(w.dtype)
    return (w - tau).clamp(min=0.0)


class _Loop:
    """The shared optimisation loop: Adam over ``params``, a timestep schedule, early stop."""

    def __init__(self, pipe, cfg: PromptAttackConfig):
        self.pipe, self.cfg = pipe, cfg
        pipe.unet.requires_grad_(False)
        pipe.text_encoder.requires_grad_(False)

    def run(self, params, cond_fn, x0, check=None, after_step=None) -> dict:
        """Minimise the denoising loss of ``cond_fn()`` on ``x0``; ``check()`` after each
        timestep may stop early. Returns loss history and where it stopped."""
        cfg = self.cfg
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        losses, per_t, stopped = [], [], None
        x0 = x0.float()
        for ti, t in enumerate(timestep_schedule(self.pipe.scheduler, cfg.timesteps)):
            tt = torch.full((x0.shape[0] * cfg.batch,), t, dtype=torch.long)
            for _ in range(cfg.iterations):
                xb = x0.repeat_interleave(cfg.batch, 0)
                noise = torch.randn(xb.shape, generator=gen)
                cond = cond_fn()
                if cond.shape[0] > 1:
                    cond = cond.repeat_interleave(cfg.batch, 0)
                loss = C.denoising_loss(self.pipe, xb, cond, tt, noise)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if after_step is not None:
                    after_step()
                losses.append(float(loss.detach()))
            block = losses[-cfg.iterations :]
            per_t.append({"t": t, "loss_first": block[0], "loss_last": block[-1]})
            if check is not None and cfg.early_stop and check():
                stopped = ti + 1
                break
        return {
            "loss_per_timestep": per_t,
            "timesteps_run": stopped or cfg.timesteps,
            "stopped_early": stopped is not None,
            "iterations_run": len(losses),
        }


def unlearndiff(pipe, prompt, seed, x0, judge, gen_kw, cfg: PromptAttackConfig):
    """UnlearnDiffAtk: k tokens, each a distribution over the vocabulary kept on the simplex;
    the forward pass uses the argmax token (straight-through), so what is optimised is always a
    real prompt. Returns ``(adversarial text, image, success, info)``."""
    allowed = allowed_token_ids(pipe)
    table = C.token_table(pipe)[allowed].float()
    g = torch.Generator().manual_seed(cfg.seed + 1)
    w = torch.full((cfg.tokens, len(allowed)), 1.0 / len(allowed))
    w = project_simplex(w + 1e-3 * torch.rand(w.shape, generator=g)).requires_grad_(True)
    base = C.token_ids(pipe, [prompt], n_slots=cfg.tokens)

    def hard_ids():
        ids = base.clone()
        ids[0, 1 : 1 + cfg.tokens] = allowed[w.detach().argmax(-1)]
        return ids

    def cond_fn():
        hard = torch.nn.functional.one_hot(w.argmax(-1), len(allowed)).to(w.dtype)
        st = hard + w - w.detach()  # value: the argmax token; gradient: to the distribution
        return C.encode_tokens(pipe, hard_ids(), inject=(st @ table)[None])

    def project():
        with torch.no_grad():
            w.copy_(project_simplex(w))

    def check():
        cond = C.encode_prompts(pipe, [text_of(hard_ids())])
        return judge.sees(C.generate(pipe, cond, [seed], **gen_kw))[0]

    def text_of(ids):
        adv = C.decode_tokens(pipe, ids[0, 1 : 1 + cfg.tokens].tolist())
        return f"{adv} {prompt}"

    info = _Loop(pipe, cfg).run([w], cond_fn, x0, check=check, after_step=project)
    text = text_of(hard_ids())
    typed = C.token_ids(pipe, [text])
    info["round_trips"] = bool(torch.equal(typed, hard_ids()))
    image = C.generate(pipe, C.encode_prompts(pipe, [text]), [seed], **gen_kw)[0]
    return text, image, judge.sees([image])[0], info


def soft_prompt(pipe, prompt, seed, x0, judge, gen_kw, cfg: PromptAttackConfig):
    """k free embedding vectors prepended to the prompt (no vocabulary constraint)."""
    allowed = allowed_token_ids(pipe)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    init = allowed[torch.randint(len(allowed), (cfg.tokens,), generator=g)]
    emb = C.token_table(pipe)[init].float().clone().requires_grad_(True)
    ids = C.token_ids(pipe, [prompt], n_slots=cfg.tokens)

    def cond_fn():
        return C.encode_tokens(pipe, ids, inject=emb[None])

    def image():
        with torch.no_grad():
            return C.generate(pipe, cond_fn(), [seed], **gen_kw)[0]

    info = _Loop(pipe, cfg).run([emb], cond_fn, x0, check=lambda: judge.sees([image()])[0])
    im = image()
    return None, im, judge.sees([im])[0], info


def concept_inversion(pipe, prompts, x0, cfg: PromptAttackConfig) -> tuple[torch.Tensor, dict]:
    """Textual inversion of one new word on all target latents at once (one per prompt row of
    ``prompts``); returns its embedding ``[1, D]``, prepended to each prompt to generate."""
    allowed = allowed_token_ids(pipe)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    init = allowed[torch.randint(len(allowed), (1,), generator=g)]
    emb = C.token_table(pipe)[init].float().clone().requires_grad_(True)
    ids = C.token_ids(pipe, list(prompts), n_slots=1)
    info = _Loop(pipe, cfg).run(
        [emb], lambda: C.encode_tokens(pipe, ids, inject=emb[None]), x0, check=None
    )
    return emb.detach(), info
