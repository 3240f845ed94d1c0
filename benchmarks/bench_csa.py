"""Speed of the vectorised CSA layer against the plain-loop reference; prints a markdown table.

Run from the repository root:  python -m benchmarks.bench_csa [--device cpu|cuda] [--repeats 3]

The mask is the official 'center' mask (fineSize/4 + overlap 4, overlap = 4) of an image 8x the feature size,
brought to the feature level with feature_mask (3 box convolutions > 5/16), the same for every sample.
The reference (benchmarks/csa_reference.py) mirrors the official per-position loop and also builds
the N x N attention; the vectorised forward is timed without trace (no attention matrix).
Features are uniform in [0,1) by default (post-activation-like: 0 <= a, c <= 1). With --features gaussian
(signed, like the official pre-norm input) a and c leave [0,1] and the recurrence amplifies float32
rounding, so both implementations drift from the exact result and from each other (the diff column
then measures that amplification, not a bug; the tests compare such inputs in float64).
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.csa_reference import csa_reference
from inpaintlib.attention.csa import coherent_semantic_attention, feature_mask

CONFIGS = [  # (feature side, channels, batch)
    (32, 64, 1),
    (32, 64, 4),
    (32, 512, 1),
    (32, 512, 4),
    (64, 64, 1),
    (64, 64, 4),
]


def official_center_mask(feature_side: int, batch: int, device: torch.device) -> torch.Tensor:
    """(B,1,s,s) feature mask of the official centre hole [fine/4 + 4, fine/2 + fine/4 - 4) at fine = 8 s."""
    fine = 8 * feature_side
    overlap = 4
    image_mask = torch.zeros(batch, 1, fine, fine, device=device)
    start, stop = fine // 4 + overlap, fine // 2 + fine // 4 - overlap
    image_mask[:, :, start:stop, start:stop] = 1
    return feature_mask(image_mask)


def best_time(function, repeats: int, device: torch.device) -> float:
    """Shortest wall time of ``repeats`` calls, in seconds (synchronising on CUDA)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device for both implementations")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of the vectorised layer (best kept)")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timed calls of the loop reference")
    parser.add_argument("--features", choices=["uniform", "gaussian"], default="uniform")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    print(f"device: {device}, torch {torch.__version__}, CPU threads: {torch.get_num_threads()}, ", end="")
    print(f"features: {args.features}\n")
    print("| H x W | C | B | holes / sample | loop reference (s) | vectorised (ms) | speed-up ", end="")
    print("| max abs diff | max abs out |")
    print("|---|---|---|---|---|---|---|---|---|")
    for side, channels, batch in CONFIGS:
        shape = (batch, channels, side, side)
        features = torch.rand(shape, device=device) if args.features == "uniform" else torch.randn(shape, device=device)
        mask = official_center_mask(side, batch, device)
        coherent_semantic_attention(features, mask)  # warm-up
        vectorised = best_time(lambda: coherent_semantic_attention(features, mask), args.repeats, device)
        reference_outputs = []
        reference_seconds = best_time(
            lambda: reference_outputs.append(csa_reference(features, mask).out), args.reference_repeats, device
        )
        reference_out = reference_outputs[-1]
        difference = (coherent_semantic_attention(features, mask) - reference_out).abs().max()
        holes = int(mask[0].sum())
        print(
            f"| {side} x {side} | {channels} | {batch} | {holes} | {reference_seconds:.3f} | "
            f"{vectorised * 1e3:.1f} | {reference_seconds / vectorised:.0f}x | {difference.item():.1e} | "
            f"{reference_out.abs().max().item():.2g} |"
        )


if __name__ == "__main__":
    main()
