"""Tests of inpaintlib.experiment: paired arms x seeds, equal budgets, shared initial weights, workers."""

import numpy as np
import pytest
import torch

from inpaintlib.experiment import Arm, Experiment, build_arm, import_object, load_arm, run_experiment, run_experiments
from inpaintlib.models.unet import UNetMethod

UNET = "inpaintlib.models.unet:UNetMethod"


def _experiment(tmp_path, **changes) -> Experiment:
    arms = (Arm("wide", UNET, {"channels": [8, 16, 32]}),
            Arm("narrow", UNET, {"channels": [8, 16]}, share_init_with="wide"))
    settings = dict(arms=arms, seeds=(0, 1), steps=3, batch_size=2, image_size=32, train_images=8,
                    eval_per_bucket=1, checkpoint_root=str(tmp_path), curve_points=3, curve_per_bucket=1)
    return Experiment(**(settings | changes))


def test_shared_parts_start_equal(tmp_path):
    exp = _experiment(tmp_path)
    wide, _ = build_arm(exp, "wide", 0)
    narrow, shared = build_arm(exp, "narrow", 0)
    other_seed, _ = build_arm(exp, "wide", 1)
    w, n = wide.state_dict(), narrow.state_dict()
    common = [k for k in n if k in w and w[k].shape == n[k].shape]
    assert common and 0 < shared < 1 and shared == pytest.approx(len(common) / len(n))
    assert all(torch.equal(w[k], n[k]) for k in common)
    assert not torch.equal(w[common[0]], other_seed.state_dict()[common[0]])


def test_runs_are_paired_equal_budget_and_independent_of_workers(tmp_path):
    one = run_experiment(_experiment(tmp_path / "a"), workers=1, progress=False)
    two = run_experiment(_experiment(tmp_path / "b"), workers=2, progress=False)
    for key, run in one.runs.items():
        assert run.per_image == two.runs[key].per_image, key
        assert run.budget["images_seen"] == 3 * 2
    assert one.scores("wide").shape == (2, 6)
    assert len(one.runs["wide", 0].curve) == 3 and one.runs["wide", 0].curve[-1]["images_seen"] == 6
    assert not np.array_equal(one.scores("wide")[0], one.scores("wide")[1])   # seeds differ


def test_ablation_summary_and_rebuild(tmp_path):
    exp = _experiment(tmp_path)
    result = run_experiment(exp, workers=1, progress=False)
    ablation = result.ablation("depth", "wide", "narrow")
    d = result.scores("wide") - result.scores("narrow")
    assert ablation["delta_mean"] == pytest.approx(d.mean())
    assert ablation["ci95"][0] < ablation["delta_mean"] < ablation["ci95"][1]
    assert ablation["verdict"] in {"helps", "hurts", "no detectable effect"}
    assert set(ablation) >= {"component", "metric", "seeds", "delta_mean", "ci95", "images", "verdict"}
    summary = result.model_summary("wide")
    assert summary["overall"]["psnr_hole"] == pytest.approx(result.scores("wide").mean())
    assert summary["budget"]["images_seen"] == 6 and summary["seed_spread"]["seeds"] == [0, 1]
    assert [p["images_seen"] for p in result.curves()["narrow"]] == [2, 4, 6]
    method = load_arm(exp, "wide", 1)
    bench = exp.benchmark()
    from inpaintlib.evaluate import evaluate

    again = evaluate(method.inpaint, bench, progress=False).per_image["psnr_hole"].double().tolist()
    assert again == pytest.approx(result.runs["wide", 1].per_image["psnr_hole"], abs=1e-6)


def test_bad_experiments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        _experiment(tmp_path, arms=(Arm("a", UNET), Arm("a", UNET)))
    with pytest.raises(ValueError, match="unknown arm"):
        _experiment(tmp_path, arms=(Arm("a", UNET, share_init_with="b"),))
    with pytest.raises(ValueError, match="unknown recipe"):
        _experiment(tmp_path, recipe="fast")
    with pytest.raises(ValueError, match="cannot import"):
        import_object("inpaintlib.models.unet:Nope")
    assert import_object(UNET) is UNetMethod


def test_several_experiments_share_one_pool(tmp_path):
    short = _experiment(tmp_path / "short")
    longer = _experiment(tmp_path / "long", steps=4, seeds=(3,), arms=(Arm("wide", UNET, {"channels": [8, 16, 32]}),))
    a, b = run_experiments([short, longer], workers=2, progress=False)
    assert sorted(a.runs) == [("narrow", 0), ("narrow", 1), ("wide", 0), ("wide", 1)]
    assert list(b.runs) == [("wide", 3)] and b.runs["wide", 3].budget["images_seen"] == 8


def test_extra_benchmark_and_semantic_scores(tmp_path):
    exp = _experiment(tmp_path, extra_benchmarks=("boundary",), segmenter_steps=2, seeds=(0, 1))
    result = run_experiment(exp, workers=1, progress=False)
    run = result.runs["wide", 0]
    assert set(run.per_image) >= {"psnr_hole", "hole_accuracy"} and set(run.summary["semantic"]) == {"miou", "miou_hole"}
    assert result.scores("wide", "psnr_hole", "boundary").shape == (2, len(exp.benchmark(masks="boundary")))
    assert not np.array_equal(result.scores("wide", "psnr_hole", "boundary")[0][:3], result.scores("wide")[0][:3])
    summary = result.model_summary("wide")
    assert "boundary" in summary["benchmarks"] and "semantic" in summary["benchmarks"]["boundary"]
    ablation = result.ablation("depth", "wide", "narrow", metric="hole_accuracy", benchmark="boundary")
    assert ablation["benchmark"] == "boundary" and ablation["metric"] == "hole_accuracy"


def test_arm_with_its_own_steps_counts_its_pretrained_images(tmp_path):
    arm = Arm("second_stage", UNET, {"channels": [8, 16], "norm": "batch"}, steps=2, pretrained_images=10)
    assert Arm("x", UNET, {"weights": "rough/seed{seed}.safetensors", "n": 3}).arguments(4) == {"weights": "rough/seed4.safetensors", "n": 3}
    result = run_experiment(_experiment(tmp_path, arms=(arm,), seeds=(0, 1)), workers=1, progress=False)
    run = result.runs["second_stage", 1]
    assert run.budget == run.budget | {"steps": 2, "images_seen": 2 * 2 + 10, "pretrained_images": 10}
    assert run.curve[-1]["images_seen"] == 14 and result.model_summary("second_stage")["budget"]["images_seen"] == 14
