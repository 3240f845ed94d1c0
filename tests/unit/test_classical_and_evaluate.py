import math

import pytest
import torch

from inpaintlib.classical import biharmonic_inpaint, telea_inpaint
from inpaintlib.evaluate import Benchmark, bucket_table, evaluate, results_table, seed_results_table, seed_spread
from inpaintlib.masks import BUCKET_NAMES
from inpaintlib.metrics import PSNR_MAX


def _square_hole(size=32):
    mask = torch.zeros(2, 1, size, size)
    mask[..., 10:20, 12:22] = 1
    return mask


def test_classical_methods_keep_known_pixels_and_fill_constants():
    mask = _square_hole()
    flat = torch.full((2, 3, 32, 32), 0.4)
    for fn in (biharmonic_inpaint, telea_inpaint):
        out = fn(flat * (1 - mask), mask)
        assert out.shape == flat.shape
        assert torch.allclose(out, flat, atol=2 / 255), fn.__name__  # a constant picture is filled with the constant


def test_biharmonic_reproduces_a_linear_ramp():
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32).contiguous()
    mask = _square_hole()
    out = biharmonic_inpaint(ramp * (1 - mask), mask)
    assert (out - ramp)[mask.expand_as(ramp) > 0].abs().max() < 0.02


def test_harness_hides_the_hole_and_composes():
    bench = Benchmark.scenes(32, per_bucket=1)
    seen = []

    def spy(masked, mask):
        seen.append(bool((masked * mask).abs().max() == 0))
        return torch.zeros_like(masked)

    evaluate(spy, bench, batch_size=4, progress=False)
    assert seen and all(seen)

    oracle_images = iter(bench.images.split(4))
    oracle = evaluate(lambda m, k: next(oracle_images), bench, batch_size=4, progress=False).summary()
    assert oracle["overall"]["psnr_hole"] == PSNR_MAX and oracle["overall"]["l1_hole"] == 0


def test_summary_has_every_bucket_and_tables_build():
    bench = Benchmark.scenes(32, per_bucket=2)
    assert bench.bucket.bincount().tolist() == [2] * 6
    summary = evaluate(telea_inpaint, bench, progress=False).summary()
    assert list(summary["buckets"]) == list(BUCKET_NAMES) and all(b["n"] == 2 for b in summary["buckets"].values())
    assert summary["overall"]["psnr_hole"] < summary["overall"]["psnr"]  # the hole is the hard part
    both = {"telea": summary, "zeros": evaluate(lambda m, k: torch.zeros_like(m), bench, progress=False).summary()}
    assert results_table(both).loc["telea", "psnr_hole"] > results_table(both).loc["zeros", "psnr_hole"]
    assert bucket_table(both).shape == (2, 6)


def test_boundary_benchmark_holes_cross_classes():
    bench = Benchmark.scenes(48, per_bucket=1, masks="boundary")
    crossing = [len(lab[m[0] > 0].unique()) >= 2 for lab, m in zip(bench.labels, bench.masks)]
    assert sum(crossing) >= len(crossing) - 1


def test_seed_spread_summarises_values_by_seed():
    spread = seed_spread({2: 15.0, 0: 16.0, 1: 17.0})
    assert spread["seeds"] == [0, 1, 2] and spread["values"] == [16.0, 17.0, 15.0]
    assert spread["mean"] == pytest.approx(16.0) and spread["std"] == pytest.approx(1.0)
    assert (spread["min"], spread["max"]) == (15.0, 17.0)
    with pytest.raises(ValueError, match="at least two seeds"):
        seed_spread({0: 1.0})


def test_seed_results_table_puts_trained_and_classical_rows_together():
    overall = {"psnr_hole": 16.0, "ssim_hole": 0.4, "l1_hole": 0.1}
    trained = {"overall": overall, "seed_spread": {"seeds": [0, 1, 2], "std": 0.2},
               "budget": {"images_seen": 3200, "train_seconds": 20.0}}
    table = seed_results_table({"unet": trained, "telea": {"overall": overall | {"psnr_hole": 15.5}}})
    assert table.loc["unet", "psnr_hole_seed_std"] == 0.2 and table.loc["unet", "seeds"] == 3
    assert table.loc["unet", "images_seen"] == 3200 and math.isnan(table.loc["telea", "images_seen"])
    assert table.loc["telea", "psnr_hole"] == 15.5
