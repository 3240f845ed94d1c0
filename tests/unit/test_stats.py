"""Tests of inpaintlib.stats: paired differences, the interval over seeds and images, the verdict."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from inpaintlib.stats import (
    HELPS, HURTS, NO_EFFECT, comparison_sentence, paired_comparison, paired_differences, paired_interval, seed_interval, verdict,
    verdict_sentence,
)


def test_interval_by_hand():
    # 3 seeds x 4 images; per-seed means 1, 2, 3 and per-image means 1.5, 2.5, 1.5, 2.5.
    d = np.array([[0.5, 1.5, 0.5, 1.5], [1.5, 2.5, 1.5, 2.5], [2.5, 3.5, 2.5, 3.5]])
    out = paired_interval(d)
    seed_var, image_var = 1.0, np.var([1.5, 2.5, 1.5, 2.5], ddof=1)
    half = scipy_stats.t.ppf(0.975, 2) * math.sqrt(seed_var / 3 + image_var / 4)
    assert out["delta_mean"] == pytest.approx(2.0)
    assert out["ci95"] == pytest.approx([2.0 - half, 2.0 + half])
    assert out["half_width"] == pytest.approx(half)
    assert out["per_seed"] == pytest.approx([1.0, 2.0, 3.0])
    assert (out["n_seeds"], out["images"]) == (3, 4)


def test_interval_covers_true_effect_about_95_percent():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        seed_effect = rng.normal(0.3, 0.2, size=(4, 1))
        d = seed_effect + rng.normal(0, 1.0, size=(4, 60))
        lo, hi = paired_interval(d)["ci95"]
        covered += lo <= 0.3 <= hi
    assert covered / 400 > 0.93


def test_more_seed_noise_widens_the_interval():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, size=(3, 50))
    quiet = paired_interval(base + np.array([[0.0], [0.01], [-0.01]]))
    loud = paired_interval(base + np.array([[0.0], [1.0], [-1.0]]))
    assert loud["half_width"] > 3 * quiet["half_width"]


def test_paired_differences_and_errors():
    assert paired_differences([[2.0, 3.0]], [[1.0, 1.0]]).tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="one shape"):
        paired_differences([[1.0, 2.0]], [[1.0]])
    with pytest.raises(ValueError, match="NaN"):
        paired_differences([[float("nan")]], [[1.0]])
    with pytest.raises(ValueError, match="two seeds"):
        paired_interval(np.ones((1, 5)))
    with pytest.raises(ValueError, match="two images"):
        paired_interval(np.ones((3, 1)))


@pytest.mark.parametrize("ci, higher, expected", [
    ([0.1, 0.5], True, HELPS), ([-0.5, -0.1], True, HURTS), ([-0.1, 0.2], True, NO_EFFECT),
    ([0.1, 0.5], False, HURTS), ([-0.5, -0.1], False, HELPS), ([0.0, 0.3], True, NO_EFFECT),
])
def test_verdict(ci, higher, expected):
    assert verdict(ci, higher_is_better=higher) == expected


def test_verdict_sentence_names_interval():
    result = {"delta_mean": 0.12, "ci95": [-0.05, 0.29], "n_seeds": 3, "images": 300, "verdict": NO_EFFECT}
    sentence = verdict_sentence("Contextual attention", result)
    assert "no effect" in sentence and "[-0.05, +0.29]" in sentence and "3 seeds" in sentence
    assert "helps" in verdict_sentence("X", result | {"verdict": HELPS, "ci95": [0.05, 0.2]})


def test_paired_comparison_against_a_fixed_baseline():
    a = np.array([[3.0, 4.0, 5.0], [3.1, 4.1, 5.1], [3.2, 4.2, 5.2]])
    baseline = np.array([1.0, 2.0, 3.0])
    out = paired_comparison(a, baseline)
    assert out["delta_mean"] == pytest.approx(2.1) and out["verdict"] == HELPS
    assert out["ci95"] == pytest.approx([2.1 - 4.303 * 0.1 / 3**0.5, 2.1 + 4.303 * 0.1 / 3**0.5], abs=1e-3)
    assert paired_comparison(a, np.tile(baseline, (3, 1)))["ci95"] == pytest.approx(out["ci95"])
    assert paired_comparison(a, baseline, higher_is_better=False)["verdict"] == HURTS


def test_comparison_sentence():
    result = {"delta_mean": -0.5, "ci95": [-0.8, -0.2], "n_seeds": 3, "images": 300, "verdict": HURTS}
    assert comparison_sentence("The U-Net", "Telea", result).startswith("The U-Net is worse than Telea on in-hole PSNR (-0.50 dB")
    assert "No difference" in comparison_sentence("A", "B", result | {"verdict": NO_EFFECT, "ci95": [-0.8, 0.1]})


def test_seed_interval_by_hand():
    values = [1.0, 1.2, 0.8]   # mean 1.0, sample std 0.2
    half = scipy_stats.t.ppf(0.975, 2) * 0.2 / math.sqrt(3)
    result = seed_interval(values)
    assert result["mean"] == pytest.approx(1.0) and result["half_width"] == pytest.approx(half)
    assert result["ci95"] == pytest.approx([1.0 - half, 1.0 + half]) and result["n_seeds"] == 3
    assert seed_interval(values, confidence=0.5)["half_width"] < half
    with pytest.raises(ValueError, match="at least two"):
        seed_interval([1.0])
