"""Run every notebook with the `gpu` preset's models and precision but `smoke`-sized budgets.

A full `gpu` chapter trains for up to an hour; this check runs each chapter's `gpu` architecture
(widths, image size, batch, mixed precision, attention chunking) for the few steps of `smoke`, so a
broken `gpu` preset shows in minutes instead of after an hour on a lent GPU::

    python scripts/check_gpu_preset.py                     # CPU: the gpu models' shapes, in float32
    python scripts/check_gpu_preset.py --device cuda       # on the GPU machine, before the real runs
    python scripts/check_gpu_preset.py --only 01_unet_baseline 04_sge_net

Only the knobs of ``BUDGET_KNOBS`` take their `smoke` values; everything else is the `gpu` preset's,
except that on a CPU mixed precision is off unless ``--amp`` is given: bf16 autocast on a CPU without
bf16 units is emulated (one step of the `gpu` U-Net, batch 8 at 128 px, took 81 s with it and 2.1 s
without on the 2-core build machine).
Run folders go to a temporary directory (or ``--runs-dir``); the table printed at the end gives each
chapter's wall time and the overrides it ran with. Exit status 1 if any chapter failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from inpaintlib.config import preset_values  # noqa: E402
from inpaintlib.runner import RunFailed, _parameter_names, notebooks_in_order, run  # noqa: E402
from inpaintlib.train import resolve_device  # noqa: E402

# How long and on how much data a chapter trains and evaluates: never what it builds.
BUDGET_KNOBS = (
    "steps",
    "ablation_steps",
    "rough_steps",
    "teacher_steps",
    "segmenter_steps",
    "spread_steps",
    "spread_seeds",
    "eval_every",
    "train_images",
    "eval_per_bucket",
    "stats_images",
)


def budget_overrides(path: Path, amp: bool) -> dict:
    """The `smoke` values of the budget knobs the notebook at ``path`` declares, and ``amp: False``
    when ``amp`` is off and the notebook has that knob."""
    smoke, declared = preset_values(path.stem, "smoke"), _parameter_names(path)
    overrides = {name: smoke[name] for name in BUDGET_KNOBS if name in declared}
    return overrides | ({"amp": False} if not amp and "amp" in declared else {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--runs-dir", type=Path, help="where run folders go (default: a temporary directory)")
    parser.add_argument("--amp", action="store_true", help="keep mixed precision on a CPU too")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="notebook names (default: every notebook)")
    args = parser.parse_args(argv)

    notebooks = notebooks_in_order()
    if args.only:
        unknown = set(args.only) - {p.stem for p in notebooks}
        if unknown:
            parser.error(f"unknown notebooks: {', '.join(sorted(unknown))}; known: {', '.join(p.stem for p in notebooks)}")
        notebooks = [p for p in notebooks if p.stem in args.only]

    amp = args.amp or resolve_device(args.device).type != "cpu"
    with tempfile.TemporaryDirectory(prefix="gpu-preset-check-") as tmp:
        runs_dir = args.runs_dir or Path(tmp)
        failures = 0
        print(f"{'notebook':28s} {'result':6s} {'wall s':>7s}  overrides", flush=True)
        for path in notebooks:
            overrides = budget_overrides(path, amp) | {"device": args.device}
            started = time.perf_counter()
            try:
                run(path, "gpu", overrides, runs_dir=runs_dir, force=True, progress=False)
                result = "ok"
            except RunFailed as err:
                result, failures = "FAILED", failures + 1
                print(err, file=sys.stderr, flush=True)
            print(f"{path.stem:28s} {result:6s} {time.perf_counter() - started:7.1f}  {overrides}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
