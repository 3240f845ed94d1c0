"""Time the vectorised contextual attention against the plain-loop reference of its tests.

Usage: ``python benchmarks/bench_attention.py [--sizes 32 64] [--channels 64 128] [--batches 1 4]``.
Self-attention (f is b) with a centred square hole covering a quarter of the feature map, the setting
of the DeepFill v1 attention branch (128 channels at 64x64 for 256x256 images). Prints a markdown table.
The loop reference lives in ``tests/unit/test_contextual_attention.py`` and is imported from there.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import time
from pathlib import Path
from types import ModuleType

import torch

from inpaintlib.attention.contextual import contextual_attention

TEST_MODULE = Path(__file__).resolve().parents[1] / "tests" / "unit" / "test_contextual_attention.py"


def load_reference() -> ModuleType:
    """Import the test module that holds ``reference_contextual_attention``."""
    spec = importlib.util.spec_from_file_location("test_contextual_attention", TEST_MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def centred_hole(batch: int, size: int) -> torch.Tensor:
    """(B, 1, size, size) mask with a size/2 x size/2 hole in the middle."""
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4 : size // 4 + size // 2, size // 4 : size // 4 + size // 2] = 1.0
    return mask


def best_time(run, repeats: int) -> tuple[float, object]:
    """Smallest wall time of ``repeats`` calls in seconds, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="feature sizes H = W")
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of the vectorised version (best kept)")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timed calls of the loop reference")
    parser.add_argument("--chunk-size", type=int, default=None, help="chunk_size passed to the vectorised version")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    reference = load_reference().reference_contextual_attention
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print()
    print("| features (H x W) | C | B | vectorised (ms) | loop reference (s) | speed-up | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for channels in args.channels:
            for batch in args.batches:
                features = torch.randn(batch, channels, size, size)
                mask = centred_hole(batch, size)
                contextual_attention(features, features, mask, chunk_size=args.chunk_size)  # warm-up
                fast, output = best_time(
                    lambda: contextual_attention(features, features, mask, chunk_size=args.chunk_size), args.repeats
                )
                slow, (expected, _) = best_time(
                    lambda: reference(features.numpy(), features.numpy(), mask.numpy()), args.reference_repeats
                )
                difference = float((output.double() - torch.from_numpy(expected)).abs().max())
                print(
                    f"| {size} x {size} | {channels} | {batch} | {fast * 1e3:.1f} | {slow:.1f} | "
                    f"{slow / fast:,.0f}x | {difference:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
