"""Train the U-Net baseline data-parallel under torchrun, with the sizes of a chapter-1 preset.

One node, N processes (one per GPU, or CPU processes with gloo)::

    torchrun --standalone --nproc_per_node 8 scripts/train_ddp.py --preset gpu
    torchrun --standalone --nproc_per_node 2 scripts/train_ddp.py --preset smoke --backend gloo --device cpu
    python scripts/train_ddp.py --preset smoke      # without torchrun: one process, same code path

``--batch-size`` (default: the preset's) is the global batch, split evenly over the ranks, so the
learning rate of the preset stays right. Rank 0 writes the run folder: ``config.json`` (parameters,
world size, device, versions, commit, timings), ``metrics.json`` (the shared-benchmark evaluation,
training images/s, history) and ``checkpoints/`` (the trainer's ``latest.safetensors`` for resume,
``unet_generator.safetensors``). Running the same command again resumes from the checkpoint.
Every rank renders the same training scenes (``batches(step)`` is a pure function of the step).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from inpaintlib import distributed as dist_utils  # noqa: E402
from inpaintlib.config import PRESETS, REPO_ROOT, preset_values  # noqa: E402
from inpaintlib.data.batches import InpaintingBatches  # noqa: E402
from inpaintlib.evaluate import Benchmark, evaluate  # noqa: E402
from inpaintlib.models.unet import UNetMethod  # noqa: E402
from inpaintlib.runner import _git, _versions, save_metrics  # noqa: E402
from inpaintlib.train import Trainer, count_parameters, resolve_device, save_weights, seed_everything  # noqa: E402

NOTEBOOK = "01_unet_baseline"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpu", choices=PRESETS, help=f"sizes from presets/{NOTEBOOK}.yaml")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch (all ranks together)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--norm", default="batch", choices=("batch", "group", "instance", "none"),
                        help="batch norm uses per-rank statistics; group/instance/none match one process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun: the rank's GPU)")
    parser.add_argument("--backend", default=None, choices=("nccl", "gloo"), help="default: nccl with CUDA, else gloo")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="default: the preset's")
    parser.add_argument("--amp-dtype", default="bfloat16", choices=("bfloat16", "float16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the generator (not the spectral-norm critic)")
    parser.add_argument("--run-dir", type=Path, default=None, help=f"default runs/ddp/{NOTEBOOK}-<preset>-w<N>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = preset_values(NOTEBOOK, args.preset)
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "image_size": args.image_size,
                 "train_images": args.train_images, "amp": args.amp}
    cfg |= {k: v for k, v in overrides.items() if v is not None}

    launched = all(name in os.environ for name in dist_utils.TORCHRUN_VARIABLES)
    if launched:
        context = dist_utils.init_distributed(args.backend)
        device = context.device if context.backend == "nccl" else resolve_device(args.device)
    else:
        device = resolve_device(args.device)
    rank, world_size = dist_utils.get_rank(), dist_utils.get_world_size()
    if cfg["batch_size"] % world_size:
        raise SystemExit(f"global batch {cfg['batch_size']} is not divisible by {world_size} processes")
    amp = bool(cfg["amp"]) and device.type == "cuda"
    run_dir = args.run_dir or REPO_ROOT / "runs" / "ddp" / f"{NOTEBOOK}-{args.preset}-w{world_size}"
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"{world_size} process(es) on {device}; {cfg['image_size']} px, {cfg['steps']} steps of global batch "
              f"{cfg['batch_size']} ({cfg['batch_size'] // world_size} per rank); run folder {run_dir}", flush=True)

    seed_everything(args.seed)
    batches = InpaintingBatches.scenes(cfg["image_size"], cfg["train_images"], cfg["batch_size"], seed=args.seed)
    bench = Benchmark.scenes(cfg["image_size"], cfg["eval_per_bucket"]) if rank == 0 else None
    method = UNetMethod(cfg["channels"], norm=args.norm, adv_weight=cfg["adv_weight"], lr=cfg["lr"])

    latest: dict = {}

    def eval_fn(step: int) -> dict:  # called on rank 0 only
        latest["result"] = evaluate(method.inpaint, bench, device=device, progress=False)
        return latest["result"].summary()["overall"]

    trainer = Trainer(method, batches, cfg["steps"], checkpoint_dir=run_dir / "checkpoints",
                      checkpoint_every=max(1, cfg["steps"] // 4), eval_fn=eval_fn, eval_every=cfg["eval_every"],
                      device=device, amp=amp, amp_dtype=args.amp_dtype, channels_last=args.channels_last,
                      compile=("generator",) if args.compile else False, distributed=world_size > 1, progress=rank == 0)
    started = time.time()
    history = trainer.fit()
    wall = time.time() - started
    if rank == 0:
        save_weights(method.generator, run_dir / "checkpoints" / "unet_generator.safetensors")
        final = latest.get("result") or evaluate(method.inpaint, bench, device=device, progress=False)
        trained_images = trainer.step * cfg["batch_size"]  # step and train_seconds both count across resumes
        save_metrics(run_dir, {
            "results": {"unet": final.summary() | {"params": count_parameters(method.generator),
                                                   "train_seconds": trainer.train_seconds, "steps": trainer.step}},
            "train_images_per_second": trained_images / max(trainer.train_seconds, 1e-9),
            "history": history,
        })
        config = {
            "script": "scripts/train_ddp.py", "notebook_presets": NOTEBOOK, "preset": args.preset, "parameters": cfg,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "world_size": world_size, "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine()),
            "amp": amp, "git_commit": _git("rev-parse", "HEAD"), "versions": _versions(), "wall_time_s": round(wall, 2),
        }
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
        print(f"trained to step {trainer.step} in {trainer.train_seconds:.1f} s "
              f"({trained_images / max(trainer.train_seconds, 1e-9):.1f} images/s over {world_size} process(es)); "
              f"in-hole PSNR {final.summary()['overall']['psnr_hole']:.2f} dB", flush=True)
    dist_utils.barrier()
    dist_utils.shutdown()


if __name__ == "__main__":
    main()
