"""Sample an audit grid: rows are prompts (or classes), columns are seeds, models side by side.

    python scripts/sample_grid.py --model OUT --compare BASE --prompts prompts.txt \
        --seeds 0 1 2 3 --output grid.png

``--model`` / ``--compare``: a pipeline folder, a UNet-only folder or LoRA weights over
``--base``, or a class-conditional DDPM run dir (then ``--classes`` gives the rows). With no
``--model``, the embedded world (tiny SD for prompts, the digits DDPM for --classes). Both
models see the same seeds, so a difference in a cell is the erasure's doing. Writes the grid
PNG and, next to it, ``<stem>_images/`` with every image and ``manifest.json`` (prompt or
class, seed, guidance, steps, model for each image).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from erase.errors import EraseError, cli_main
from erase.helpformat import HelpFormatter
from erase.validate import validate_args


def build_parser() -> argparse.ArgumentParser:
    """The job's flags; ``--help`` prints each with its effective default."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=HelpFormatter)
    from erase.generators import add_model_args

    add_model_args(p, classes=True)
    p.add_argument(
        "--compare",
        default=None,
        help="a second model (e.g. the base) to show beside (default: none, one panel)",
    )
    p.add_argument(
        "--compare_base",
        default=None,
        help="base for a UNet-only/LoRA --compare (default: --base)",
    )
    p.add_argument(
        "--prompts",
        nargs="+",
        default=None,
        help="prompts (one row each), or one prompt file (txt/csv); 'A|B' is read as A and B "
        "(default: the ten digit prompts of the embedded world)",
    )
    p.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=None,
        help="rows for DDPMs (default: classes 0-9)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--output", default="grid.png")
    p.add_argument("--images_dir", default=None, help="default: <output stem>_images/")
    p.add_argument(
        "--labels",
        nargs=2,
        default=None,
        help="panel titles (model, compare) (default: the models' names)",
    )
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def _sample(gen, rows, args, row_is_class: bool):
    """``images[r][c]`` for row r and seed c, and the settings actually used."""
    from erase.images import tensor_to_pil

    guidance = gen.guidance_scale if args.guidance_scale is None else args.guidance_scale
    steps = (
        gen.num_inference_steps if args.num_inference_steps is None else args.num_inference_steps
    )
    grid = [[None] * len(args.seeds) for _ in rows]
    if row_is_class:
        for c, seed in enumerate(args.seeds):
            x = gen.generate_classes(
                rows, seed=seed, guidance_scale=guidance, num_inference_steps=steps
            )
            for r, im in enumerate(tensor_to_pil(x)):
                grid[r][c] = im
    else:
        prompts = [p for p in rows for _ in args.seeds]
        seeds = [s for _ in rows for s in args.seeds]
        images = gen.generate(prompts, seeds, guidance, steps, batch_size=args.batch_size)
        for i, im in enumerate(images):
            grid[i // len(args.seeds)][i % len(args.seeds)] = im
    return grid, guidance, steps


def run(args):
    """The job for parsed ``args`` (raises ``EraseError`` on bad input; the API calls this)."""
    validate_args(args)  # every number and path flag, before any work
    from erase.data.prompts_csv import load_prompts
    from erase.generators import check_positive, load_generator
    from erase.grids import comparison_grid, save_grid
    from erase.io import atomic_dir, atomic_write_json, save_image

    check_positive("--batch_size", args.batch_size)
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise EraseError(f"--output must name a .png file, got {args.output!r}")
    if args.prompts is not None and args.classes is not None:
        raise EraseError("give --prompts or --classes, not both")
    row_is_class = args.classes is not None or (
        args.prompts is None and args.model is not None and _is_ddpm(args.model)
    )
    if row_is_class:
        rows = args.classes if args.classes is not None else list(range(10))
        row_labels = [f"class {c}" for c in rows]
    else:
        if args.prompts is None:
            from erase.embedded.styles import digit_prompt

            rows = [digit_prompt(d) for d in range(10)]
        else:
            one = len(args.prompts) == 1  # a file, or the older 'A|B' form
            rows = [r.prompt for r in load_prompts(args.prompts[0] if one else args.prompts)]
        row_labels = rows
    models = [(args.model, args.base)]
    if args.compare is not None:
        models.append((args.compare, args.compare_base or args.base))
    gens = [load_generator(m, b, classes=row_is_class, device=args.device) for m, b in models]
    for g in gens:
        if (g.kind == "ddpm") != row_is_class:
            raise EraseError(
                f"{g.name} is {'a class-conditional' if g.kind == 'ddpm' else 'a text-to-image'} "
                f"model but the rows are {'classes' if row_is_class else 'prompts'}"
            )
    titles = list(args.labels) if args.labels else [g.name for g in gens]
    if args.labels and len(gens) == 1:
        titles = titles[:1]

    panels, manifest = [], []
    for k, (g, title) in enumerate(zip(gens, titles)):
        grid, guidance, steps = _sample(g, rows, args, row_is_class)
        panels.append((title, grid))
        for r, row in enumerate(rows):
            for seed in args.seeds:
                entry = {
                    "file": f"{'model' if k == 0 else 'compare'}/r{r:02d}_seed{seed}.png",
                    "model": g.name,
                    "panel": title,
                    "seed": seed,
                    "guidance_scale": guidance,
                    "num_inference_steps": steps,
                }
                entry["class" if row_is_class else "prompt"] = row
                manifest.append(entry)
    col_labels = [f"seed {s}" for s in args.seeds]
    image = comparison_grid(panels, row_labels, col_labels)

    images_dir = (
        Path(args.images_dir) if args.images_dir else output.with_name(output.stem + "_images")
    )
    with atomic_dir(images_dir) as tmp:
        for k, (_, grid) in enumerate(panels):
            for r in range(len(rows)):
                for c, seed in enumerate(args.seeds):
                    name = f"{'model' if k == 0 else 'compare'}/r{r:02d}_seed{seed}.png"
                    save_image(grid[r][c], tmp / name)
        atomic_write_json(tmp / "manifest.json", {"grid": str(output.name), "images": manifest})
    save_grid(image, output)
    print(f"grid {image.width}x{image.height} -> {output}; images and manifest -> {images_dir}")
    return output


def _is_ddpm(model: str) -> bool:
    from erase.generators import is_ddpm_run

    p = Path(model)
    return p.exists() and is_ddpm_run(p)


@cli_main
def main(argv=None):
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
