"""Benchmark: vectorised LBP map and LBP spatial attention vs their plain-loop references (CPU).

Prints markdown tables: time of the vectorised code (median of --repeats runs), time of the loop reference
(one run), the speed ratio and the largest difference between the two. Also prints how many codes of
scikit-image's ``local_binary_pattern(P=8, R=1, method="default")`` differ from ours on ``skimage.data.camera()``.

Usage: python benchmarks/bench_lbp_attention.py [--repeats 5] [--quick] [--threads N]
"""

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.lbp_reference import lbp_codes_loop, spatial_attention_loop  # noqa: E402
from inpaintlib.attention.lbp_spatial import lbp_spatial_attention  # noqa: E402
from inpaintlib.lbp import LBP_NEIGHBOUR_WEIGHTS, local_binary_pattern  # noqa: E402

# scikit-image's bit of each (row offset, col offset): counter-clockwise from the right neighbour
SKIMAGE_BIT_WEIGHTS = {(0, 1): 1, (-1, 1): 2, (-1, 0): 4, (-1, -1): 8, (0, -1): 16, (1, -1): 32, (1, 0): 64, (1, 1): 128}


def _seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _centre_hole_mask(batch: int, size: int, hole_fraction: float) -> torch.Tensor:
    """(B, 1, size, size) mask with a centred square hole covering about ``hole_fraction`` of the image."""
    side = round(size * hole_fraction**0.5)
    top = (size - side) // 2
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, top : top + side, top : top + side] = 1
    return mask


def attention_table(repeats: int, feature_sizes: list[int], channel_counts: list[int], batches: list[int]) -> str:
    rows = [
        "| features (B, C, H, W) | holes / sample | vectorised (ms) | loop reference (ms) | speed-up | max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for size in feature_sizes:
        for channels in channel_counts:
            for batch in batches:
                generator = torch.Generator().manual_seed(size * channels + batch)
                generated = torch.randn(batch, channels, size, size, generator=generator).relu()
                known = torch.randn(batch, channels, size, size, generator=generator).relu()
                mask = _centre_hole_mask(batch, size * 8, hole_fraction=0.25)  # image is 8x the feature grid
                holes = int(torch.nn.functional.interpolate(mask, size=(size, size))[0].sum())
                with torch.no_grad():
                    vectorised_s = _seconds(lambda: lbp_spatial_attention(generated, known, mask), repeats)
                    output = lbp_spatial_attention(generated, known, mask)
                start = time.perf_counter()
                expected, _ = spatial_attention_loop(generated, known, mask)
                loop_s = time.perf_counter() - start
                difference = float((output.double() - expected).abs().max())
                rows.append(
                    f"| ({batch}, {channels}, {size}, {size}) | {holes} | {vectorised_s * 1e3:.1f} | {loop_s * 1e3:.0f} "
                    f"| {loop_s / vectorised_s:.0f}x | {difference:.1e} |"
                )
    return "\n".join(rows)


def lbp_table(repeats: int, size: int, batches: list[int]) -> str:
    rows = [
        "| gray (B, 1, H, W) | vectorised (ms) | loop reference (ms) | speed-up | codes differing |",
        "|---|---|---|---|---|",
    ]
    for batch in batches:
        gray = np.random.default_rng(batch).integers(0, 256, size=(batch, 1, size, size), dtype=np.uint8)
        gray_tensor = torch.from_numpy(gray)
        vectorised_s = _seconds(lambda: local_binary_pattern(gray_tensor), repeats)
        start = time.perf_counter()
        expected = np.stack([lbp_codes_loop(gray[b, 0]) for b in range(batch)])[:, None]
        loop_s = time.perf_counter() - start
        differing = int((local_binary_pattern(gray_tensor).numpy() != expected).sum())
        rows.append(
            f"| ({batch}, 1, {size}, {size}) | {vectorised_s * 1e3:.2f} | {loop_s * 1e3:.0f} "
            f"| {loop_s / vectorised_s:.0f}x | {differing} |"
        )
    return "\n".join(rows)


def skimage_contrast() -> str:
    import skimage.data
    from skimage.feature import local_binary_pattern as skimage_lbp

    camera = skimage.data.camera()  # (512, 512) uint8
    ours = local_binary_pattern(torch.from_numpy(camera)[None, None])[0, 0].numpy()
    theirs = skimage_lbp(camera, P=8, R=1, method="default").astype(np.int64)
    ours_in_skimage_order = np.zeros_like(ours)
    for row_offset, col_offset, weight in LBP_NEIGHBOUR_WEIGHTS:
        ours_in_skimage_order += ((ours & weight) > 0) * SKIMAGE_BIT_WEIGHTS[(row_offset, col_offset)]
    total = ours.size
    differing = int((ours != theirs).sum())
    reordered = ours_in_skimage_order != theirs
    interior = int(reordered[1:-1, 1:-1].sum())
    return "\n".join(
        [
            "| skimage.data.camera() 512x512, P=8, R=1, 'default' | codes differing from ours |",
            "|---|---|",
            f"| as returned | {differing} of {total} ({100 * differing / total:.1f} %) |",
            f"| our bits re-ordered to scikit-image's order | {int(reordered.sum())} ({100 * reordered.mean():.1f} %) |",
            f"| ... of which away from the border (interpolated diagonals) | {interior} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the vectorised code (median)")
    parser.add_argument("--quick", action="store_true", help="only 32x32 features, C=64, B=1 (a few seconds)")
    parser.add_argument("--lbp-size", type=int, default=256, help="side of the random gray images")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.repeats < 1 or args.lbp_size < 1 or args.threads < 0:
        parser.error("--repeats and --lbp-size must be positive, --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    feature_sizes, channel_counts, batches = ([32], [64], [1]) if args.quick else ([32, 64], [64, 256], [1, 4])

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("\n### LBP spatial attention (top_t=2, within_hole, centre hole of 25 %)\n")
    print(attention_table(args.repeats, feature_sizes, channel_counts, batches))
    print("\n### LBP map (official border)\n")
    print(lbp_table(args.repeats, args.lbp_size, [1] if args.quick else [1, 4]))
    print("\n### scikit-image's LBP is a different operator\n")
    print(skimage_contrast())


if __name__ == "__main__":
    main()
