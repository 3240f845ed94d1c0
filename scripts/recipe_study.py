"""Does the book's training recipe help every model? Paired seeds, equal budgets, one table.

Each model is built with its chapter's ``cpu`` preset (architecture, learning rate, loss weights) and
trained for the same steps and batches under two or more recipes (``inpaintlib.recipe``): ``paper``
(each method's own betas, constant learning rate, last weights, the preset's adversarial weight) and
``book`` (Adam 0.9/0.999, warm-up and cosine decay, EMA weights, adversarial terms off). The same seeds
give the same batches and initial weights under every recipe, so each (model, seed) is a pair.

    python scripts/recipe_study.py --models unet deepfill --seeds 0 1 2 --out runs/recipe_study --page book/recipe_study.md

writes ``<out>/study.json`` (every run's per-seed scores and budget) and prints a Markdown table of
in-hole PSNR per model and recipe with the paired difference to the first recipe and its 95 % interval;
``--page`` also writes it as a page of the book, with the machine, commit and load average.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from inpaintlib.config import REPO_ROOT, preset_values
from inpaintlib.experiment import Arm, Experiment, run_experiment
from inpaintlib.recipe import RECIPES, Recipe, get_recipe
from inpaintlib.stats import paired_differences, paired_interval, verdict


def _keep(values: dict, *names: str) -> dict:
    return {n: values[n] for n in names}


def model_arm(model: str, recipe: Recipe, image_size: int) -> Arm:
    """The model of a chapter at its ``cpu`` preset; adversarial weights follow the recipe."""
    if model == "unet":
        p = preset_values("01_unet_baseline", "cpu")
        return Arm(model, "inpaintlib.models.unet:UNetMethod",
                   {"channels": p["channels"], "adv_weight": recipe.adversarial_weight(p["adv_weight"]), "lr": p["lr"]},
                   channels_last=True)
    if model == "deepfill":
        p = preset_values("02_contextual_attention", "cpu")
        kwargs = _keep(p, "cnum", "num_downsamples", "gamma", "gan_loss", "critic_cnum", "d_steps", "lr")
        return Arm(model, "inpaintlib.models.deepfill:DeepFillMethod",
                   kwargs | {"image_size": image_size, "use_attention": True,
                             "adv_weight": recipe.adversarial_weight(p["adv_weight"])})
    if model == "sge":
        p = preset_values("04_sge_net", "cpu")
        kwargs = _keep(p, "channels", "num_scales", "q", "sgm_hidden", "seg_weight", "lr")
        return Arm(model, "inpaintlib.models.sge:SGEMethod", kwargs | {"adv_weight": recipe.adversarial_weight(p["adv_weight"])})
    if model == "coherence":
        p = preset_values("05_coherence_priors", "cpu")
        kwargs = _keep(p, "cnum", "swap_levels", "fusion", "seg_weight", "nonlocal_mode", "lr", "gate", "nonlocal_weight")
        return Arm(model, "inpaintlib.models.coherence:CoherenceMethod",
                   kwargs | {"chunk_size": p["attention_chunk"],
                             "structure_weight": recipe.adversarial_weight(p["structure_weight"])})
    if model == "saca":
        p = preset_values("06_saca", "cpu")
        kwargs = _keep(p, "cnum", "levels", "gate", "seg_weight", "lr")
        return Arm(model, "inpaintlib.models.saca:SACAMethod",
                   kwargs | {"chunk_size": p["attention_chunk"], "adv_weight": recipe.adversarial_weight(p["adv_weight"])})
    if model == "lbp":
        p = preset_values("08_lbp", "cpu")
        kwargs = _keep(p, "image_channels", "lbp_channels", "disc_channels", "top_t", "lbp_training", "hed_losses", "lr")
        return Arm(model, "inpaintlib.models.lbp:LBPMethod", kwargs | {"adv_weight": recipe.adversarial_weight(p["adv_weight"])})
    raise ValueError(f"unknown model {model!r}")


MODELS = ("unet", "deepfill", "sge", "coherence", "saca", "lbp")


def study_recipe(name: str) -> Recipe:
    """``book``, ``paper``, ``book-lr<value>`` (the book recipe at another learning rate for every model) or
    ``book-own-lr`` (the book recipe at each chapter's own learning rate)."""
    book = {k: v for k, v in vars(RECIPES["book"]).items() if k != "name"}
    if name.startswith("book-lr"):
        return Recipe(name, **book | {"lr": float(name[7:])})
    if name == "book-own-lr":
        return Recipe(name, **book | {"lr": None})
    return get_recipe(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--recipes", nargs="+", default=["paper", "book"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--eval-per-bucket", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/recipe_study"))
    parser.add_argument("--page", type=Path, default=None, help="also write the table as a book page here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.run_all import load_average, provenance

    machine, load_start = provenance(torch.device("cpu"), quick=False), load_average()
    results, started = {}, time.time()
    for recipe_name in args.recipes:
        recipe = study_recipe(recipe_name)
        experiment = Experiment(
            arms=tuple(model_arm(m, recipe, args.image_size) for m in args.models), seeds=tuple(args.seeds),
            steps=args.steps, batch_size=args.batch_size, image_size=args.image_size, train_images=args.train_images,
            eval_per_bucket=args.eval_per_bucket, checkpoint_root=str(args.out / recipe_name), recipe=recipe)
        results[recipe_name] = run_experiment(experiment, workers=args.workers)

    first = args.recipes[0]
    table = ["| model | " + " | ".join(args.recipes) + " | " + " | ".join(f"{r} - {first} (95 % CI)" for r in args.recipes[1:]) + " |",
             "|---" * (1 + 2 * len(args.recipes) - 1) + "|"]
    record = {"arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "wall_seconds": time.time() - started, "models": {}}
    for model in args.models:
        scores = {r: results[r].scores(model) for r in args.recipes}
        cells = [f"{scores[r].mean():.2f} ± {scores[r].mean(axis=1).std(ddof=1):.2f}" for r in args.recipes]
        record["models"][model] = {r: {"per_seed": scores[r].mean(axis=1).tolist(),
                                       "train_seconds": [results[r].runs[model, s].budget["train_seconds"] for s in args.seeds],
                                       "images_seen": results[r].runs[model, args.seeds[0]].budget["images_seen"]}
                                   for r in args.recipes}
        for r in args.recipes[1:]:
            interval = paired_interval(paired_differences(scores[r], scores[first]))
            lo, hi = interval["ci95"]
            cells.append(f"{interval['delta_mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] {verdict(interval['ci95'])}")
            record["models"][model][f"{r}_minus_{first}"] = interval
        table.append(f"| {model} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.json").write_text(json.dumps(record, indent=2))
    caption = (f"In-hole PSNR (dB) on {args.eval_per_bucket * 6} benchmark images, mean ± seed standard deviation over "
               f"seeds {args.seeds}; every model trained {args.steps} steps of {args.batch_size} images "
               f"({args.train_images} training scenes) under each recipe, each seed giving both recipes the same "
               f"batches and initial weights. Intervals: paired over seeds and images (`inpaintlib.stats`).")
    print("\n".join(table))
    print(caption, f"{time.time() - started:.0f} s")
    if args.page:
        machine |= {"mode": f"{len(args.seeds)} seeds", "load average at start": load_start,
                    "load average at end": load_average(), "wall time": f"{time.time() - started:.0f} s"}
        lines = ["# The recipe study", "",
                 "Does the book's training recipe (`book`: Adam 0.9/0.999, learning rate 2e-3 with warm-up and cosine "
                 "decay, EMA weights, no adversarial terms) train each model at least as well as its paper's recipe "
                 "(`paper`: the paper's betas, the chapter's constant learning rate, last weights, the preset's "
                 "adversarial weight)? Each model is built with its chapter's `cpu` preset. Produced by",
                 "", "```bash", "python scripts/recipe_study.py " + " ".join(
                     f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in vars(args).items() if k not in ("out", "page", "workers") and v is not None), "```", "",
                 caption, "", *table, "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.items()), ""]
        args.page.write_text("\n".join(lines))
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
