"""Generate the fixed evaluation masks committed at data/eval_masks_256.npz.

Run from the repository root: ``python scripts/make_eval_masks.py``. The output is a pure function of
the seed below; the test suite checks that the committed file matches a fresh draw.
"""

from __future__ import annotations

import argparse

from inpaintlib.masks import DEFAULT_EVAL_MASKS, make_eval_masks, save_eval_masks

PER_BUCKET = 100
SEED = 2024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_EVAL_MASKS))
    args = parser.parse_args()
    masks = make_eval_masks(PER_BUCKET, seed=SEED)
    save_eval_masks(masks, args.out)
    print(f"wrote {len(masks.bucket)} masks ({PER_BUCKET} per bucket) to {args.out}")


if __name__ == "__main__":
    main()
