"""Erase until it is gone: judge the concept every N steps and stop at a target.

A fixed step budget leaves some concepts half erased (digit 8 at 150 steps: 24–35 % by every
retain-weighted method) and compares methods at different erasure levels. The stopping rule
judges a fixed set of samples of the concept every ``eval_every`` steps with the evaluation's
own judge and stops when the erased share reaches ``target``, at the ``max_train_steps`` cap, or
after ``patience`` checks without progress (as CUIG does with UnlearnCanvas' classifiers).

Why a confirmation: the first check over the line is the lucky draw. A run checked every few
steps on the same 32 samples stops at the first check whose share crosses the target, so the
share it stops at is biased upward (on digit 3 every method stopped at a check of 31/32 = 97 %,
and the final evaluation on other seeds found 84–94 % for 5 of 7). So a check that meets the
target is repeated, at the same step, on ``confirm`` further sample sets from seeds of their
own, and the run stops only if each of them meets the target too; otherwise training goes on.

What the confirmation cannot fix: the check's own set is the same every time, so a set that
holds a few seeds the model keeps drawing the concept from stays under the target for the whole
run. On tuning digit 1 (``lur --inner_steps 2``) the set read 26-30 of 32 at all 19 checks from
step 150 to the 600-step cap (31 is the 95 % mark; at 97 % erased a fresh set reaches it three
times in four), and at the cap 424 new images (seven other sets of 32, which read 28-32, and 200
more) were 97.2 % erased. A run's erasure is therefore reported on new images (the
evaluation's, and the comparisons' 300), and the stop reason says only what the check saw.

Why a floor (``min_steps``): an erasure that must resist relearning needs training after the
concept is gone. ``lur-resist`` stopped at its first check (step 25) on the style "outlined"
had simulated the attack 13 times and came back in 100 % of the samples after 5 relearning
steps; trained on to step 200, in 4 % (a model that never saw the style: 34 %). Checks before
the floor are recorded but never stop the run, nor count towards the patience.

Why it cannot change the trajectory: the check samples with its own seeded noise (never the
training generators, which are a pure function of (seed, step)), in eval mode, under
``no_grad``, and puts the model back in train mode; so a run stopped at step s has the weights
of a fixed run of s steps, and resume stays bit-exact (the checks live in the checkpoint).
On several processes only the main one judges; its verdict is broadcast and all follow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .errors import EraseError
from .helpformat import per_method

CHECK_SEED = (
    30_000  # apart from the final evaluation's (10_000), the frontier's UA (20_000), training
)
# The confirming sets: set j samples from seeds CONFIRM_SEED + j * CONFIRM_STRIDE + i (i < the
# set's samples, all forget classes together). The other sample seeds start at 10 000 (the
# final evaluation; its styles at 60 000), 20 000 (the frontier's UA) and CHECK_SEED, and stay
# below 10 000 000 for any plausible count (10 classes × 10 000 samples end at 130 000); a set
# holds fewer than CONFIRM_STRIDE samples; so no seed is shared (tests/test_stopping.py).
CONFIRM_SEED = 10_000_000
CONFIRM_STRIDE = 10_000_000
DEFAULT_TARGET = 0.95
CAP_MULTIPLE = 4  # with stopping on, the default cap is this × the fixed budget


@dataclass
class StopRule:
    """``target``: erased share to reach (None: no stopping, a fixed budget); ``confirm``: how
    many fresh sample sets must also meet it before the run stops (0: the first check does)."""

    target: float | None = DEFAULT_TARGET
    eval_every: int = 25
    samples: int = 32
    patience: int = 0  # checks without a gain of ``min_delta``; 0: never give up early
    min_delta: float = 0.01
    confirm: int = 1
    min_steps: int = 0  # no stop before this step (--min_train_steps)

    def __post_init__(self):
        if self.target is not None and not 0.0 < self.target <= 1.0:
            raise EraseError(
                f"--stop_at_erased {self.target} is not a share; give a number in (0, 1] "
                "(0.95: stop once 95 % of the check's samples no longer show the concept) or off"
            )
        if self.eval_every < 1:
            raise EraseError(f"--eval_every must be >= 1, got {self.eval_every}")
        if self.samples < 1:
            raise EraseError(f"--stop_samples must be >= 1, got {self.samples}")
        if self.patience < 0:
            raise EraseError(f"--stop_patience must be >= 0, got {self.patience}")
        if self.min_steps < 0:
            raise EraseError(f"--min_train_steps must be >= 0, got {self.min_steps}")
        if self.confirm < 0:
            raise EraseError(
                f"--stop_confirm must be >= 0, got {self.confirm}: give the number of fresh "
                "sample sets that must confirm a check over the target (1, the default), or 0 "
                "to stop at the first check over it"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def confirm_seed(j: int) -> int:
    """The first seed of confirming set ``j`` (0, 1, …)."""
    return CONFIRM_SEED + j * CONFIRM_STRIDE


@dataclass
class StopMonitor:
    """Runs the checks of one run, decides, and records why the run ended.

    ``erased_share(base_seed)`` samples the model as it is now from the seeds ``base_seed`` on
    (``CHECK_SEED`` for the check, ``confirm_seed(j)`` for the confirming sets) and returns the
    share of samples its judge no longer recognises as the concept; ``description`` says which
    judge and samples.
    """

    rule: StopRule
    erased_share: Callable[..., float]
    description: dict = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    stopped: dict | None = None

    def due(self, step: int, last_step: int) -> bool:
        """A check every ``eval_every`` steps, one at the floor (the first step the run may
        stop at) and one at the cap so every run ends judged."""
        return step % self.rule.eval_every == 0 or step in (last_step, self.rule.min_steps)

    def check(self, step: int, accelerator=None) -> str | None:
        """Judge now; returns why to stop (``target`` or ``patience``) or None to go on.

        A check whose share meets the target is judged again on ``rule.confirm`` fresh sample
        sets at this step; it counts (``confirmed``) only if each of them meets the target too.
        """
        t0 = time.perf_counter()
        (share,) = self._judge(accelerator, [CHECK_SEED])
        met = share >= self.rule.target
        record = {"step": step, "erased": share}
        early = step < self.rule.min_steps
        if early:  # recorded, never stops: no confirming sets needed
            record["before_floor"], met = True, False
        elif met and self.rule.confirm:
            record["confirm"] = self._judge(
                accelerator, [confirm_seed(j) for j in range(self.rule.confirm)]
            )
            met = all(c >= self.rule.target for c in record["confirm"])
        record["confirmed"] = met
        record["seconds"] = round(time.perf_counter() - t0, 3)
        self.checks.append(record)
        if met:
            return "target"
        if early:
            return None
        k = self.rule.patience
        counted = [c for c in self.checks if not c.get("before_floor")]
        if k and len(counted) > k:
            before = max(c["erased"] for c in counted[:-k])
            recent = max(c["erased"] for c in counted[-k:])
            if recent < before + self.rule.min_delta:
                return "patience"
        return None

    def _judge(self, accelerator, seeds: list[int]) -> list[float]:
        """The shares from each base seed, judged on the main process and broadcast, so every
        process takes the same decision."""
        main = accelerator is None or accelerator.is_main_process
        shares = [float(self.erased_share(s)) for s in seeds] if main else [0.0] * len(seeds)
        if accelerator is not None and accelerator.num_processes > 1:
            import torch
            from accelerate.utils import broadcast

            t = torch.tensor(shares, dtype=torch.float64, device=accelerator.device)
            shares = [float(x) for x in broadcast(t, from_process=0).tolist()]
        return shares

    def finish(self, step: int, reason: str | None, cap: int) -> dict:
        """The record of why the run ended, for metrics.json, the model card and the report."""
        reason = reason or "cap"
        last = self.checks[-1] if self.checks else {}
        first = next((c["step"] for c in self.checks if c["erased"] >= self.rule.target), None)
        self.stopped = {
            "reason": reason,
            "step": step,
            "cap": cap,
            "target": self.rule.target,
            "erased_at_stop": last.get("erased"),
            "confirm_at_stop": list(last.get("confirm", [])),
            "reached": bool(last.get("confirmed", False)),
            "first_met_step": first,  # the first check at the target (before a floor, too)
            "rule": self.rule.to_dict(),
            "judge": self.description,
            "checks": list(self.checks),
        }
        return self.stopped

    def summary(self) -> str:
        return describe_stop(self.stopped)

    def state_dict(self) -> dict:
        return {"checks": list(self.checks)}

    def load_state_dict(self, state: dict | None) -> None:
        self.checks = list((state or {}).get("checks", []))


def describe_check(check: dict) -> str:
    """One check of the run, as the log shows it: "91.0% erased by the check" and, where the
    target was met, what the fresh sets said."""
    line = f"{check['erased']:.1%} erased by the check"
    if check.get("before_floor"):
        return line + " (before --min_train_steps: going on)"
    confirm = check.get("confirm")
    if confirm:
        shares = ", ".join(f"{c:.1%}" for c in confirm)
        line += f"; fresh set{'s' if len(confirm) > 1 else ''} {shares}: "
        line += "confirmed" if check.get("confirmed") else "not confirmed, going on"
    return line


def describe_stop(record) -> str:
    """One line on why a run ended, from its ``stopping`` record (or "off ...")."""
    if not isinstance(record, dict):
        return str(record or "not stopped")
    what = {
        "target": f"target {record['target']:.0%} met at step {record['step']}",
        "patience": f"no progress for {record['rule']['patience']} checks; stopped at step "
        f"{record['step']}",
        "cap": f"cap of {record['cap']} steps reached without the target {record['target']:.0%}",
    }[record["reason"]]
    erased = record.get("erased_at_stop")
    n = len(record.get("checks", []))
    line = what + ("" if erased is None else f" ({erased:.1%} erased at the last of {n} checks)")
    confirm = record.get("confirm_at_stop") or []
    if confirm:
        sets = f"{len(confirm)} fresh set{'s' if len(confirm) > 1 else ''}"
        samples = (record.get("rule") or {}).get("samples")
        sets += f" of {samples} samples" if samples else ""
        shares = ", ".join(f"{c:.1%}" for c in confirm)
        ok = record.get("reached")
        line += f" {'and confirmed' if ok else 'but not confirmed'} on {sets} ({shares})"
    first = met_before_floor(record)
    if first is not None:
        floor = record["rule"]["min_steps"]
        line += f"; first at the target at step {first}, trained on to the floor of {floor} steps"
    return line


def met_before_floor(record) -> int | None:
    """The step a run's check first met the target, where that was before its floor
    (``--min_train_steps``) and the floor kept it training; else None."""
    if not isinstance(record, dict):
        return None
    floor = (record.get("rule") or {}).get("min_steps") or 0
    first = record.get("first_met_step")
    return first if first is not None and first < floor else None


def class_erased_share(
    unet, scheduler, classifier, forget_classes, null_class, guidance_scale, steps, n
) -> Callable[..., float]:
    """The class task's check: ``n`` samples of each forget class from fixed seeds; erased =
    the judge's top-1 is not the asked class (UA, as the final evaluation computes it).

    The returned ``share(base_seed=CHECK_SEED)`` samples from seeds ``base_seed``,
    ``base_seed + 1``, … (one a sample, the forget classes one after the other); the monitor
    passes ``confirm_seed(j)`` for its confirming sets."""
    import torch

    from .class_eval import images_by_class
    from .metrics.classification import predict_labels

    classes = [int(c) for c in forget_classes]
    labels = torch.tensor(classes).repeat_interleave(n)

    @torch.no_grad()
    def share(base_seed: int = CHECK_SEED) -> float:
        by_class = images_by_class(
            unet, scheduler, classes, n, guidance_scale, null_class, steps, base_seed
        )
        images = torch.cat([by_class[c] for c in classes])
        pred = predict_labels(classifier, images)
        return float((pred != labels).float().mean())

    return share


def images_erased_share(
    generate: Callable[[list[str], list[int]], list], prompts: list[str], judge, n: int
) -> Callable[..., float]:
    """The concept task's check: ``n`` images over the forget prompts (round robin) from fixed
    seeds; erased = the judge (``erase.attacks.judges``: embedded, NudeNet, a classifier
    folder) does not see the concept.

    The returned ``share(base_seed=CHECK_SEED)`` samples image ``i`` from seed
    ``base_seed + i``; the monitor passes ``confirm_seed(j)`` for its confirming sets."""
    import torch

    chosen = [prompts[i % len(prompts)] for i in range(n)]

    @torch.no_grad()
    def share(base_seed: int = CHECK_SEED) -> float:
        seen = judge.sees(generate(chosen, [base_seed + i for i in range(n)]))
        return 1.0 - sum(bool(s) for s in seen) / len(seen)

    return share


def stop_target(value: str) -> float | str:
    """``--stop_at_erased``: a share in (0, 1] (95 reads as 95 %), ``auto`` or ``off``."""
    v = str(value).strip().lower()
    if v in ("auto", "off"):
        return v
    try:
        x = float(v)
    except ValueError:
        raise EraseError(
            f"--stop_at_erased {value!r}: give a share in (0, 1], auto or off"
        ) from None
    return x / 100.0 if 1.0 < x <= 100.0 else x


def resolve_rule(
    args, judge_available: bool, budget: int, method_floor: int = 0
) -> StopRule | None:
    """The run's stopping rule from its flags, and its step cap (``args.max_train_steps``).

    ``auto`` (the default) stops at 95 % wherever a judge is available and says so where none
    is; with stopping on and no ``--max_train_steps`` the cap is ``CAP_MULTIPLE`` × ``budget``.
    The floor is ``--min_train_steps``, else ``method_floor`` (the method's own) held under
    the cap: a cap the user gives wins over a method's default floor, not over a floor given.
    """
    target = stop_target(args.stop_at_erased)
    if target == "auto":
        target = DEFAULT_TARGET if judge_available else "off"
        if not judge_available:
            print(
                "stopping rule off: no judge for this concept (pass --judge, or "
                "--stop_at_erased off to silence this); training the fixed "
                f"{args.max_train_steps or budget} steps"
            )
    if target == "off" or target == 0.0:
        if args.max_train_steps is None:
            args.max_train_steps = budget
        if getattr(args, "min_train_steps", None):
            print(
                f"--min_train_steps {args.min_train_steps} has no effect with the stopping rule "
                f"off: training the fixed {args.max_train_steps} steps (--max_train_steps)"
            )
        return None
    if not judge_available:
        raise EraseError(
            "--stop_at_erased needs a judge to tell when the concept is gone; pass --judge "
            "(a class judge folder, nudenet, or an image-classifier folder) or --stop_at_erased off"
        )
    if args.max_train_steps is None:
        args.max_train_steps = CAP_MULTIPLE * budget
    floor = getattr(args, "min_train_steps", None)
    if floor is not None and floor > args.max_train_steps:
        raise EraseError(
            f"--min_train_steps {floor} is above the cap --max_train_steps "
            f"{args.max_train_steps}; lower the floor or raise the cap"
        )
    floor = min(method_floor, args.max_train_steps) if floor is None else floor
    return StopRule(
        target=float(target),
        eval_every=args.eval_every,
        samples=args.stop_samples,
        patience=args.stop_patience,
        confirm=args.stop_confirm,
        min_steps=floor,
    )


def add_stopping_args(p, *, eval_every: int = 25, samples: int = 32, methods=None) -> None:
    """The stopping flags (one group, shared by the erasure jobs); ``methods`` (the job's
    registry) lets ``--help`` print each method's floor."""
    g = p.add_argument_group("stopping: erase until the judge says the concept is gone")
    g.add_argument(
        "--stop_at_erased",
        default="auto",
        help="stop once this share of the check's samples no longer shows the concept "
        f"(auto: {DEFAULT_TARGET} where a judge is available, else off; or off); "
        "--max_train_steps is the cap",
    )
    g.add_argument("--eval_every", type=int, default=eval_every, help="steps between two checks")
    g.add_argument(
        "--stop_samples",
        type=int,
        default=samples,
        help=f"samples per check, from fixed seeds {CHECK_SEED}, {CHECK_SEED}+1, … (per "
        "forget class for the class task; round robin over the forget prompts for concepts)",
    )
    g.add_argument(
        "--stop_confirm",
        type=int,
        default=1,
        help="a check that meets the target is repeated at the same step on this many fresh "
        f"sample sets (seeds from {CONFIRM_SEED}, {CONFIRM_SEED + CONFIRM_STRIDE}, …), and the "
        "run stops only if each meets it too: the first check over the line is the lucky draw "
        "of its samples, and stopping there overstates the erasure (0: stop at that check)",
    )
    g.add_argument(
        "--min_train_steps",
        type=int,
        default=None,
        help="a floor: the rule stops no run before this step; checks before it are logged "
        "(a resisting erasure keeps hardening after the concept is gone; default: the "
        "method's: " + per_method(methods or {}, lambda s: s.min_train_steps) + ")",
    )
    g.add_argument(
        "--stop_patience",
        type=int,
        default=0,
        help="also stop after this many checks without a gain of 1 point (0: never)",
    )


def _confirm_note(rule: StopRule) -> str:
    if not rule.confirm:
        return "none: the first check over the target stops the run"
    seeds = ", ".join(str(confirm_seed(j)) for j in range(rule.confirm))
    return (
        f"a check over the target stops the run only if {rule.confirm} more sample set(s) of "
        f"the same size, seeds from {seeds}, meet it too"
    )


def class_stop_monitor(
    rule, unet, scheduler, classifier, forget_classes, null_class, guidance, steps, judge_name: str
) -> StopMonitor | None:
    """The class task's monitor: the final evaluation's judge and sampler, its own seeds."""
    if rule is None:
        return None
    share = class_erased_share(
        unet, scheduler, classifier, forget_classes, null_class, guidance, steps, rule.samples
    )
    description = {
        "judge": judge_name,
        "samples": f"{rule.samples} per forget class, seeds from {CHECK_SEED}",
        "confirm": _confirm_note(rule),
        "sampler": f"DDIM {steps} steps, guidance {guidance}",
        "erased": "the judge's top-1 is not the forget class",
    }
    return StopMonitor(rule, share, description)


def concept_stop_monitor(rule, pipe, prompts, judge, guidance, steps) -> StopMonitor | None:
    """The concept task's monitor: the pipeline with the UNet being trained, the judge of the
    evaluation (``erase.attacks.judges``), its own seeds."""
    if rule is None:
        return None
    from .embedded.tiny_sd import generate

    def sample(chosen, seeds):
        unet = pipe.unet
        was_training = unet.training
        unet.eval()
        try:
            return generate(pipe, chosen, seeds, guidance, steps, output_type="pil")
        finally:
            unet.train(was_training)

    share = images_erased_share(sample, prompts, judge, rule.samples)
    description = {
        "judge": judge.settings,
        "samples": f"{rule.samples} over {len(prompts)} forget prompts, seeds from {CHECK_SEED}",
        "confirm": _confirm_note(rule),
        "sampler": f"the pipeline's, {steps} steps, guidance {guidance}",
        "erased": "the judge does not see the concept",
    }
    return StopMonitor(rule, share, description)
