"""How far do the book's numbers move on a CPU with other floating-point kernels?

A run reproduces bit for bit on one machine, not across machines: torch picks its kernels by the CPU's
instruction set (``torch.backends.cpu.get_cpu_capability()``), and oneDNN and MKL do the same, so an
AVX2 laptop rounds differently from an AVX-512 server, and training drifts apart from the first step.
This script makes that difference measurable on one machine: it trains chapter 2's experiment (DeepFill
with and without contextual attention, and the U-Net reference, at the ``cpu`` preset with the book
recipe and three seeds) twice, once with the machine's own kernels and once restricted to AVX2
(``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``), and
compares the two: each (model, seed)'s in-hole PSNR, and the ablation's interval and verdict.

    python scripts/kernel_spread.py --out runs/kernel_spread --page book/reproducibility.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inpaintlib.config import REPO_ROOT, preset_values
from inpaintlib.experiment import Experiment, run_experiment
from inpaintlib.recipe import get_recipe
from recipe_study import model_arm

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
SETTINGS = {"native": {}, "avx2": AVX2}


def chapter2_experiment(root: Path, seeds: tuple[int, ...], preset: str = "cpu") -> Experiment:
    """Chapter 2's arms (``cpu`` architectures): DeepFill with and without attention, the U-Net reference,
    at the budget of ``preset`` (``smoke`` only to check this script)."""
    common = preset_values("02_contextual_attention", preset)
    recipe = get_recipe(common["recipe"])
    deepfill = dataclasses.replace(model_arm("deepfill", recipe, common["image_size"]), name="deepfill_ca")
    no_attention = dataclasses.replace(deepfill, name="deepfill_no_ca", kwargs=deepfill.kwargs | {"use_attention": False},
                                       share_init_with="deepfill_ca")
    return Experiment((deepfill, no_attention, model_arm("unet", recipe, common["image_size"])), seeds, common["steps"],
                      common["batch_size"], common["image_size"], common["train_images"], common["eval_per_bucket"],
                      str(root), recipe=common["recipe"])


def conclusion(moves: np.ndarray, summaries: dict) -> str:
    """What a reader re-running a chapter should expect, computed from the two runs."""
    seed_std = float(np.mean(list(summaries["native"]["seed_std"].values())))
    verdicts = {name: summary["ablation"]["verdict"] for name, summary in summaries.items()}
    text = (f"Other kernels moved a trained model by {moves.mean():.3f} dB on average, against a seed-to-seed standard "
            f"deviation of {seed_std:.3f} dB (mean over the three models): "
            f"{'less than' if moves.mean() < seed_std else 'as much as'} another seed moves it. ")
    if len(set(verdicts.values())) == 1:
        return text + "The ablation's verdict is the same under both."
    return text + (f"The ablation's verdict changed ({verdicts['native']} with the native kernels, "
                   f"{verdicts['avx2']} with AVX2): a verdict whose interval ends close to zero can flip on another "
                   "machine, and should be read as fragile.")


def worker(out: Path, seeds: tuple[int, ...], preset: str) -> None:
    """Run the experiment with this process's kernels; write scores, ablation and the capability seen."""
    result = run_experiment(chapter2_experiment(out / "checkpoints", seeds, preset))
    np.savez(out / "scores.npz", **{arm.name: result.scores(arm.name) for arm in result.experiment.arms})
    summary = {"capability": torch.backends.cpu.get_cpu_capability(),
               "ablation": result.ablation("contextual attention branch", "deepfill_ca", "deepfill_no_ca"),
               "seed_std": {arm.name: result.model_summary(arm.name)["seed_spread"]["std"] for arm in result.experiment.arms}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/kernel_spread"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--page", type=Path, default=None, help="also write the result as a book page here")
    parser.add_argument("--preset", default="cpu", help="the budget (smoke: a quick check of this script)")
    parser.add_argument("--worker", choices=list(SETTINGS), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.out / args.worker, tuple(args.seeds), args.preset)
        return

    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.run_all import load_average, provenance

    machine, load_start, started = provenance(torch.device("cpu"), quick=False), load_average(), time.time()
    for name, env in SETTINGS.items():
        (args.out / name).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, "--worker", name, "--out", str(args.out), "--preset", args.preset,
                   "--seeds", *map(str, args.seeds)]
        subprocess.run(command, env=os.environ | env, check=True)
    scores = {name: np.load(args.out / name / "scores.npz") for name in SETTINGS}
    summaries = {name: json.loads((args.out / name / "summary.json").read_text()) for name in SETTINGS}

    rows = ["| model | seed | in-hole PSNR, native kernels | with AVX2 kernels | difference | seed std (native) |",
            "|---|---|---|---|---|---|"]
    moves = []
    for arm in scores["native"].files:
        for i, seed in enumerate(args.seeds):
            a, b = scores["native"][arm][i].mean(), scores["avx2"][arm][i].mean()
            moves.append(b - a)
            rows.append(f"| {arm} | {seed} | {a:.3f} | {b:.3f} | {b - a:+.3f} | {summaries['native']['seed_std'][arm]:.3f} |")
    ablation_rows = ["| kernels | torch capability | with - without attention (dB) | 95 % CI | verdict |", "|---|---|---|---|---|"]
    for name, summary in summaries.items():
        ab = summary["ablation"]
        ablation_rows.append(f"| {name} | {summary['capability']} | {ab['delta_mean']:+.3f} | "
                             f"[{ab['ci95'][0]:+.3f}, {ab['ci95'][1]:+.3f}] | {ab['verdict']} |")
    moves = np.abs(np.array(moves))
    text = (f"Across the {len(moves)} trained (model, seed) pairs, the AVX2 kernels moved the mean in-hole PSNR by "
            f"{moves.mean():.3f} dB on average (largest {moves.max():.3f} dB).")
    print("\n".join(rows + [""] + ablation_rows + ["", text]))
    if args.page:
        machine |= {"mode": f"{len(args.seeds)} seeds", "load average at start": load_start,
                    "load average at end": load_average(), "wall time": f"{time.time() - started:.0f} s"}
        lines = ["# Reproducibility across machines", "",
                 "The same chapter, the same seeds and the same code give identical numbers on one machine with one "
                 "thread per training, and other numbers on a CPU whose floating-point kernels differ. To measure by "
                 "how much, chapter 2's experiment (DeepFill with and without contextual attention, and the U-Net "
                 "reference; `cpu` preset, book recipe) was trained twice on this machine: once with its own "
                 "(AVX-512) kernels, once restricted to the AVX2 kernels a typical laptop uses "
                 "(`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`). Produced by", "",
                 "```bash", f"python scripts/kernel_spread.py --seeds {' '.join(map(str, args.seeds))}", "```", "",
                 text, "", *rows, "", "The chapter's ablation under each set of kernels:", "", *ablation_rows, "",
                 conclusion(moves, summaries), "",
                 "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.items()), ""]
        args.page.write_text("\n".join(lines))
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
