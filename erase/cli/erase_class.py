"""Erase one or more classes from a class-conditional diffusion model (``UNet2DModel``).

    accelerate launch scripts/erase_class.py --forget_class 7 --method lur --output_dir OUT

With no ``--pretrained_model`` the embedded digits DDPM is used (trained once on scikit-learn's
real handwritten digits and shipped with the package). Writes ``OUT/unet``, ``OUT/scheduler``,
``OUT/erase_config.json``, ``OUT/metrics.json``, ``OUT/grid.png``, ``OUT/step_log.{json,png}``.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass
from pathlib import Path

from erase.errors import EraseError, cli_main
from erase.helpformat import HelpFormatter
from erase.methods import CLASS_METHODS
from erase.runs import add_training_args
from erase.validate import validate_args

DEFAULTS = dict(steps=150, lr=1e-4, batch=64)


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; ``--help`` prints each with its effective default."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=HelpFormatter)
    p.add_argument(
        "--pretrained_model",
        default=None,
        help="folder with unet/ (class-conditional UNet2DModel) and scheduler/; "
        "default: the embedded digits DDPM",
    )
    p.add_argument("--forget_class", type=int, nargs="+", required=True)
    p.add_argument(
        "--anchor_classes",
        type=int,
        nargs="+",
        default=None,
        help="the anchor forget loss maps the forget class to these classes (default: every "
        "other class, one drawn per sample: SalUn's random label). That target converges to "
        "the other classes' average prediction; where the judge still sees the forget class "
        "in that average's samples (on the digits: an 8), the default drops anchors until it "
        "sees it in none (recorded as anchor_rule in erase_config.json)",
    )
    p.add_argument("--method", default="lur", help=f"one of {', '.join(CLASS_METHODS)}")
    p.add_argument(
        "--train_data",
        default=None,
        help="'digits' (default), a CIFAR-10 python folder, or an image folder with "
        "one subfolder per class",
    )
    p.add_argument(
        "--null_class",
        type=int,
        default=None,
        help="label of the unconditional class (default: the model's world.json, else its "
        "last label)",
    )
    p.add_argument(
        "--retain_null_prob",
        type=float,
        default=0.1,
        help="share of retain labels replaced by the null class, so the unconditional "
        "branch that guidance uses is retained too (the pretraining rate)",
    )
    p.add_argument(
        "--guidance_scale",
        type=float,
        default=None,
        help="for the evaluation samples (default: the model's world.json, else 2.0)",
    )
    p.add_argument(
        "--num_inference_steps",
        type=int,
        default=None,
        help="for the evaluation samples (default: the model's world.json, else 50)",
    )
    p.add_argument("--eval_samples_per_class", type=int, default=50)
    p.add_argument("--no_eval", action="store_true", help="skip the before/after evaluation")
    p.add_argument(
        "--judge",
        default=None,
        help="folder of a classifier from erase-train-judge that judges the samples (UA, "
        "retained accuracy, FID in its features) on any data; default: the digits classifier "
        "for the digits, none otherwise",
    )
    p.add_argument(
        "--inception_fid",
        default="auto",
        choices=["auto", "off"],
        help="with --judge also the 2048-d Inception FID (auto: when its weights are on disk "
        "or can be downloaded)",
    )
    add_training_args(p, **DEFAULTS, methods=CLASS_METHODS)
    add_reference_arg(p)
    return p


def add_reference_arg(p: argparse.ArgumentParser) -> None:
    """``--reference``: the model retrained without the forget classes, to measure against."""
    p.add_argument(
        "--reference",
        nargs="+",
        default=None,
        help="measure the run against exact unlearning: 'auto' (the digits DDPM retrained "
        "without the forget classes, trained once into the cache, ~25 min a seed on a CPU) or "
        "folder(s) of a model retrained without them (erase-train-ddpm --exclude_class); "
        "several ('auto auto auto': seeds 0, 1, 2) are averaged, and their spread is the noise "
        "floor (default: no reference)",
    )


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def load_class_model(path: str | None):
    """(unet, scheduler, world info); clear errors for folders that are not such a model."""
    from diffusers import DDPMScheduler, UNet2DModel

    from erase.embedded.ddpm import digits_ddpm_path

    folder = Path(path) if path else digits_ddpm_path()
    if not folder.is_dir():
        raise EraseError(
            f"--pretrained_model {str(folder)!r} is not a folder; pass a diffusers "
            "folder with unet/ and scheduler/ (or leave it out for the digits model)"
        )
    unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
    cfg_file = unet_dir / "config.json"
    if not cfg_file.exists():
        raise EraseError(
            f"{str(folder)!r} has no unet/config.json; it is not a diffusers UNet "
            "folder (save one with UNet2DModel.save_pretrained)"
        )
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("_class_name") != "UNet2DModel" or not cfg.get("num_class_embeds"):
        raise EraseError(
            f"{str(folder)!r} holds a {cfg.get('_class_name')} without class "
            "embeddings; erase_class.py needs a class-conditional UNet2DModel "
            "(num_class_embeds set); for text-to-image use erase_concept.py"
        )
    try:
        unet = UNet2DModel.from_pretrained(unet_dir)
    except Exception as exc:  # corrupt or mismatched weights
        raise EraseError(f"cannot load the UNet in {str(unet_dir)!r}: {exc}") from None
    sched_dir = folder / "scheduler"
    scheduler = (
        DDPMScheduler.from_pretrained(sched_dir)
        if sched_dir.is_dir()
        else DDPMScheduler(num_train_timesteps=1000)
    )
    world = (
        json.loads((folder / "world.json").read_text()) if (folder / "world.json").exists() else {}
    )
    return unet, scheduler, world, folder


def build_config(args, method, meta, train_cfg, world, n_classes, null_class, env) -> dict:
    return {
        "task": "class",
        "pretrained_model": args.pretrained_model or "embedded:digits_ddpm",
        "forget_class": args.forget_class,
        "anchor_classes": args.anchor_classes or "every other class (random label)",
        "method": method.name,
        "method_spec": method.__dict__,
        "meta": meta.to_dict(),
        "training": train_cfg.to_dict(),
        "train_data": args.train_data or "digits",
        "train_params": "full",
        "num_classes": n_classes,
        "null_class": null_class,
        "guidance_scale": args.guidance_scale,
        "num_inference_steps": args.num_inference_steps,
        "image_size": world.get("image_size"),
        "image_range": "[-1, 1]",
        "esd_eta": args.esd_eta,
        "ga_bound": args.ga_bound,
        "retain_null_prob": args.retain_null_prob,
        "environment": env,
    }


def resolve_inputs(args):
    """(method spec, stopping rule, output folder): every flag checked before anything loads."""
    validate_args(args)  # every number and path flag, before any work
    from erase.methods import get_method, with_flag_overrides
    from erase.reference import check_reference_specs, reference_specs
    from erase.runs import prepare_output_dir

    args.reference = reference_specs(args.reference)  # off: none; folders checked before work
    check_reference_specs(args.reference or [])

    method = with_flag_overrides(get_method(args.method, CLASS_METHODS), args)
    from erase.stopping import resolve_rule

    digits = args.pretrained_model is None and args.train_data in (None, "digits")
    rule = resolve_rule(
        args, args.judge is not None or digits, DEFAULTS["steps"], method.min_train_steps
    )
    out = prepare_output_dir(args.output_dir, args.overwrite, args.resume_from_checkpoint)
    if args.max_train_steps < 1 or args.train_batch_size < 1:
        raise EraseError("--max_train_steps and --train_batch_size must be >= 1")
    return method, rule, out


@dataclass
class ClassModel:
    """The loaded model with its label layout (classes ``0..num_classes-1`` plus the null
    class that classifier-free guidance uses)."""

    unet: object
    scheduler: object
    world: dict
    num_classes: int
    null_class: int


def load_model(args) -> ClassModel:
    """Load the UNet and check ``--forget_class`` against its labels."""
    unet, scheduler, world, _ = load_class_model(args.pretrained_model)
    n_embeds = unet.config.num_class_embeds
    null_class = (
        args.null_class if args.null_class is not None else world.get("null_class", n_embeds - 1)
    )
    n_classes = world.get("num_classes", n_embeds - 1 if null_class == n_embeds - 1 else n_embeds)
    for flag, given in (
        ("--forget_class", args.forget_class),
        ("--anchor_classes", args.anchor_classes),
    ):
        bad = [c for c in given or () if not 0 <= c < n_classes or c == null_class]
        if bad:
            raise EraseError(
                f"{flag} {bad} out of range: this model has classes "
                f"0..{n_classes - 1}"
                + (f" (null class {null_class})" if null_class is not None else "")
            )
    both = sorted(set(args.anchor_classes or ()) & set(args.forget_class))
    if both:
        raise EraseError(
            f"--anchor_classes {both} are also forget classes; anchor onto classes that stay"
        )
    return ClassModel(unet, scheduler, world, n_classes, null_class)


def build_data(args, model: ClassModel):
    """(training data fitted to the model, the judge or None); fills in the sampling flags
    the model's ``world.json`` sets."""
    from erase.data.class_data import fit_to_model, load_class_data

    data = load_class_data(args.train_data)
    if data.num_classes != model.num_classes:
        raise EraseError(
            f"--train_data has {data.num_classes} classes, the model {model.num_classes}; "
            "pass data with the model's classes"
        )
    cfg = model.unet.config
    data = fit_to_model(data, cfg.in_channels, cfg.sample_size)
    judge = None
    if args.judge:  # also the stopping rule's
        from erase.judge import load_judge

        judge = load_judge(args.judge, num_classes=model.num_classes)
    args.guidance_scale = args.guidance_scale or model.world.get("guidance_scale", 2.0)
    args.num_inference_steps = args.num_inference_steps or model.world.get(
        "num_inference_steps", 50
    )
    return data, judge


def is_digits_world(data, model: ClassModel) -> bool:
    return data.source == "sklearn-digits" and model.num_classes == 10


def choose_anchors(args, model: ClassModel, data, judge, method, rule, acc) -> dict | None:
    """Random label's anchors by ``erase.class_anchors``' rule (why: its docstring), when no
    ``--anchor_classes`` are given, the forget loss is the anchor mapping, and a judge is at
    hand (``--judge``, or the digits classifier on the digits); None otherwise. The main process
    decides and broadcasts, so every process trains toward the same target."""
    if args.anchor_classes or method.forget_loss != "anchor":
        return None
    if judge is None:
        if not is_digits_world(data, model):
            return None
        from erase.embedded.classifier import load_digits_classifier

        judge = load_digits_classifier()
    from accelerate.utils import broadcast_object_list

    from erase.class_anchors import choose_anchor_classes
    from erase.stopping import StopRule

    record = [None]
    if acc.is_main_process:
        record[0] = choose_anchor_classes(
            model.unet.to(acc.device),
            model.scheduler,
            data.images,
            data.labels,
            args.forget_class,
            model.num_classes,
            model.null_class,
            judge,
            args.guidance_scale,
            args.num_inference_steps,
            samples=(rule or StopRule()).samples,
        )
    record = broadcast_object_list(record)[0]
    if record["dropped"] and acc.is_main_process:
        print(
            "random label: the judge sees the forget class in the samples its target converges "
            f"to ({100 * record['fixed_point_erased'][0]:.0f} % erased); anchoring onto "
            f"{record['anchor_classes']} instead ({100 * record['fixed_point_erased'][-1]:.0f} "
            "% erased; --anchor_classes overrides)"
        )
    return record


def anchor_classes_of(args, anchors: dict | None) -> list[int] | None:
    """The anchors the task trains toward: ``--anchor_classes``, else the rule's where it
    dropped any, else None (every other class)."""
    if args.anchor_classes:
        return args.anchor_classes
    return anchors["anchor_classes"] if anchors and anchors["dropped"] else None


def build_task(args, model: ClassModel, data, method, acc, anchors: dict | None = None):
    """(the untouched original, the task, the trainable parameters)."""
    from erase.jobs import weight_dtype_of
    from erase.params import FrozenModel, select_trainable
    from erase.tasks.class_erasure import ClassErasureTask

    device = acc.device
    original = copy.deepcopy(model.unet)
    frozen = FrozenModel(original, weight_dtype_of(acc)).to(device)
    model.unet.to(device)
    named = select_trainable(model.unet, "full")
    task = ClassErasureTask(
        frozen,
        model.scheduler,
        data,
        sorted(set(args.forget_class)),
        model.null_class,
        method.forget_loss,
        method.retain_loss,
        args.train_batch_size,
        device,
        eta=args.esd_eta,
        ga_bound=args.ga_bound,
        retain_null_prob=args.retain_null_prob,
        anchor_classes=anchor_classes_of(args, anchors),
    )
    return original, task, named


def build_stopper(args, rule, model: ClassModel, judge):
    """The stopping rule's monitor: the evaluation's judge and sampler on its own seeds."""
    if rule is None:
        return None
    from erase.embedded.classifier import load_digits_classifier
    from erase.stopping import class_stop_monitor

    return class_stop_monitor(
        rule,
        model.unet,
        model.scheduler,
        judge if judge is not None else load_digits_classifier(),
        sorted(set(args.forget_class)),
        model.null_class,
        args.guidance_scale,
        args.num_inference_steps,
        f"ResNet-18 judge from {args.judge}" if judge is not None else "digits classifier",
    )


def save_model(model: ClassModel, out: Path) -> None:
    from erase.io import atomic_dir

    model.unet.eval()
    with atomic_dir(out / "unet") as tmp:
        model.unet.save_pretrained(tmp, safe_serialization=True)
    with atomic_dir(out / "scheduler") as tmp:
        model.scheduler.save_pretrained(tmp)


def evaluate(args, model: ClassModel, original, data, judge, method, device, out: Path) -> dict:
    """Before/after samples judged by ``--judge`` (or the digits classifier); writes
    ``grid.png`` and returns the metrics."""
    from erase.class_eval import add_inception_fid, class_grid, evaluate_class_erasure
    from erase.embedded.classifier import load_digits_classifier
    from erase.io import save_image
    from erase.metrics.intervals import share_interval

    n_classes = model.num_classes
    classifier = judge if judge is not None else load_digits_classifier()
    eval_device = device if judge is not None else "cpu"
    real_by_class = (
        {c: data.images[data.labels == c] for c in range(n_classes)} if judge is not None else None
    )
    eval_cfg = {
        "samples_per_class": args.eval_samples_per_class,
        "guidance_scale": args.guidance_scale,
        "null_class": model.null_class,
        "num_inference_steps": args.num_inference_steps,
        "seed": 10_000,
    }
    metrics, before, after = evaluate_class_erasure(
        model.unet.to(eval_device),
        original.to(eval_device).float(),
        model.scheduler,
        classifier.to(eval_device),
        args.forget_class,
        eval_cfg,
        progress=True,
        classes=range(n_classes),
        real_images_by_class=real_by_class,
        judge_note=f"ResNet-18 judge from {args.judge}" if judge is not None else None,
    )
    n_forget = sum(len(after[int(k)]) for k in set(args.forget_class))
    metrics["unlearning_accuracy_samples"] = n_forget  # the card's "of N new images"
    metrics["unlearning_accuracy_interval"] = share_interval(
        metrics["unlearning_accuracy"], n_forget
    )
    if judge is not None and args.inception_fid == "auto":
        add_inception_fid(metrics, before, after, real_by_class, eval_device)
    if judge is None:  # the digits world: a second judge of another model family agrees?
        from erase.embedded.svm import svm_erasure_shares

        metrics["check_judge"] = svm_erasure_shares(after, args.forget_class)
    save_image(class_grid(before, after, title_after=f"erased ({method.name})"), out / "grid.png")
    b = metrics["before"]
    print(
        f"unlearning accuracy {metrics['unlearning_accuracy']:.3f} "
        f"(before {b['unlearning_accuracy']:.3f}); retained accuracy "
        f"{metrics['retained_accuracy']:.3f} (before {b['retained_accuracy']:.3f}); "
        f"{'judge' if judge is not None else 'digits'}-FID remaining "
        f"{metrics['fid_remaining']:.2f} "
        f"(before {b['fid_remaining']:.2f})"
    )
    if args.reference:
        from erase.class_reference import class_gap

        metrics["reference_gap"] = class_gap(
            out, args, metrics, classifier, eval_cfg, real_by_class, eval_device
        )
    return metrics


def run(args):
    """The job for parsed ``args`` (raises ``EraseError`` on bad input; the API calls this)."""
    method, rule, out = resolve_inputs(args)
    from erase.class_card import class_model_card
    from erase.io import atomic_write_json, atomic_write_text
    from erase.jobs import mark_complete, save_run_records, start_trackers, stop_unless_main, train
    from erase.runs import configs_from_args, environment_record, make_accelerator

    model = load_model(args)
    data, judge = build_data(args, model)
    acc = make_accelerator(args)
    anchors = choose_anchors(args, model, data, judge, method, rule, acc)
    original, task, named = build_task(args, model, data, method, acc, anchors)
    meta, train_cfg = configs_from_args(args, method)
    config = build_config(
        args,
        method,
        meta,
        train_cfg,
        model.world,
        model.num_classes,
        model.null_class,
        environment_record(acc),
    )
    if anchors is not None:
        config["anchor_rule"] = anchors
        config["anchor_classes"] = anchor_classes_of(args, anchors) or config["anchor_classes"]
    start_trackers(acc, args, "erase_class", config)
    stopper = build_stopper(args, rule, model, judge)
    result = train(acc, model.unet, named, task, method, meta, train_cfg, out, stopper=stopper)
    if stop_unless_main(acc):
        return

    save_model(model, out)
    config["train_seconds"] = round(result.wall_seconds, 2)
    config["erasure_seconds"] = round(result.elapsed, 2)
    config.update(result.stopping_record())
    save_run_records(out, config, result.log, f"erase class {args.forget_class} with {method.name}")
    if not args.no_eval and (judge is not None or is_digits_world(data, model)):
        metrics = evaluate(args, model, original, data, judge, method, acc.device, out)
    else:
        metrics = {"note": "no judge for this data; evaluate with eval/ and your own classifier"}
    metrics["erasure_seconds"] = config["erasure_seconds"]
    metrics.update(result.stopping_record())
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "README.md", class_model_card(config, metrics))
    mark_complete(acc, out)
    print(f"saved the erased model to {out}")
    return out


@cli_main
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
