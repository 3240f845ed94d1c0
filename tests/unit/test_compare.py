"""The comparison: runs found and flattened, missing chapters kept as missing (never 0), links, grid."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaintlib.classical import biharmonic_inpaint
from inpaintlib.compare import (
    MISSING,
    ChapterRun,
    budget_notes,
    bucket_table,
    collect,
    comparison_table,
    curve_slope,
    example_grid,
    inpainter_spec,
    limits_table,
    load_inpainter,
    model_rows,
    perceptual_scores,
    plot_buckets,
    provenance_table,
    run_href,
    paired_versus,
    seed_evaluations,
    seed_scores,
    seed_weights,
    split_by_budget,
    table_html,
    transfer_summary,
    transfer_table,
    versus_reference,
)
from inpaintlib.evaluate import Benchmark, evaluate
from inpaintlib.lpips import LPIPS
from inpaintlib.masks import BUCKET_NAMES
from inpaintlib.models.unet import UNetInpainter
from inpaintlib.runner import write_config
from inpaintlib.train import save_weights

EXPECTED = ["01_unet_baseline", "02_contextual_attention", "03_csa"]


def _result(psnr_hole: float, n: int = 12, **extra) -> dict:
    """A chapter's result entry with easy numbers: every overall metric derived from ``psnr_hole``."""
    overall = {"psnr_hole": psnr_hole, "ssim_hole": psnr_hole / 100, "l1_hole": 1 / psnr_hole,
               "psnr": psnr_hole + 10, "ssim": psnr_hole / 50, "l1": 0.5 / psnr_hole}
    buckets = {b: {k: v + i for k, v in overall.items()} | {"n": 2} for i, b in enumerate(BUCKET_NAMES[:3])}
    return {"overall": overall, "buckets": buckets, "images_per_s": 40.0, "n": n} | extra


def _run(root: Path, stem: str, key: str, results: dict | None, started: str = "2026-01-01T00:00:00Z",
         image_size: int = 32, preset: str = "smoke") -> Path:
    folder = root / stem / f"{preset}-{key}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({} if results is None else {"results": results}))
    config = {"notebook": f"notebooks/{stem}.ipynb", "preset": preset, "key": key, "overrides": {}, "started": started,
              "status": "complete", "parameters": {"image_size": image_size}, "git_commit": "abcdef1234567890",
              "git_dirty": False, "device": {"name": "x86_64"}, "wall_time_s": 3.5}
    (folder / "notebook.ipynb").write_text("{}")
    write_config(folder, config)  # with the checksums the runner verifies
    return folder


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    _run(root, "00_data_and_masks", "d0", None)  # no results: not a model chapter
    _run(root, "01_unet_baseline", "old", {"unet": _result(5.0)}, started="2025-12-31T00:00:00Z")
    _run(root, "01_unet_baseline", "u1", {"biharmonic": _result(11.0), "telea": _result(10.5),
                                          "unet": _result(14.0, params=75471, train_seconds=12.5, steps=4)})
    # chapter 3 under another name than expected; same classical numbers, so they are dropped as repeats
    _run(root, "03_coherent_semantic_attention", "c3", {"biharmonic": _result(11.0), "csa": _result(15.0, params=9,
         semantic={"miou": 0.61, "miou_hole": 0.42})})
    # an unexpected chapter with results; its classical baseline saw other data, so it is kept
    _run(root, "05_coherence_priors", "p5", {"biharmonic": _result(9.0, n=30), "swap": _result(13.0, n=30)},
         image_size=64)
    _run(root, "09_comparison", "z9", {"unet": _result(1.0)})
    return root


def test_collect_keeps_missing_chapters_and_matches_by_number(runs_root):
    runs = collect(runs_root, "smoke", EXPECTED, exclude=["09_comparison"])
    assert [r.chapter for r in runs] == ["01_unet_baseline", "02_contextual_attention", "03_coherent_semantic_attention",
                                         "05_coherence_priors"]
    assert runs[0].path.name == "smoke-u1"  # the newest run
    assert runs[1].path is None and runs[1].metrics == {}
    assert collect(runs_root, "cpu", EXPECTED)[0].path is None  # another preset's runs do not count


def test_rows_and_table_never_turn_missing_into_zero(runs_root):
    rows = model_rows(collect(runs_root, "smoke", EXPECTED, exclude=["09_comparison"]))
    labels = [r.label for r in rows]
    assert labels == ["biharmonic (01)", "telea", "unet", "02_contextual_attention", "csa", "biharmonic (05)", "swap"]
    table = comparison_table(rows, runs_root)
    missing = table.loc["02_contextual_attention"]
    assert missing["status"] == MISSING and missing["run"] == MISSING
    numbers = missing.drop(["chapter", "status", "run"]).astype(float)
    assert numbers.isna().all() and not (numbers == 0).any()
    # values straight from the metrics files (built by _result, not by the code under test)
    assert table.loc["unet", "psnr_hole"] == 14.0 and table.loc["unet", "psnr"] == 24.0
    assert table.loc["unet", "params"] == 75471 and table.loc["unet", "train_seconds"] == 12.5
    assert math.isnan(table.loc["unet", "miou"]) and table.loc["csa", "miou_hole"] == 0.42
    assert table.loc["swap", "image_size"] == 64 and table.loc["swap", "eval_images"] == 30
    assert table.loc["unet", "run"] == "01_unet_baseline/smoke-u1"


def test_bucket_table_and_plot(runs_root):
    rows = model_rows(collect(runs_root, "smoke", EXPECTED, exclude=["09_comparison"]))
    table = bucket_table(rows, "psnr_hole")
    assert list(table.columns) == list(BUCKET_NAMES) and "02_contextual_attention" not in table.index
    assert table.loc["unet", "0-10%"] == 14.0 and table.loc["unet", "20-30%"] == 16.0
    assert table.loc["unet", BUCKET_NAMES[3:]].isna().all()  # buckets the run did not have stay empty
    fig = plot_buckets(rows, ["psnr_hole", "l1_hole"])
    assert [len(ax.lines) for ax in fig.axes[:2]] == [len(table)] * 2
    assert any("02_contextual_attention (missing)" in t.get_text() for t in fig.texts)


def test_html_links_every_number_and_says_missing(runs_root, tmp_path):
    rows = model_rows(collect(runs_root, "smoke", EXPECTED, exclude=["09_comparison"]))
    page = table_html(rows, runs_root)
    assert 'class="comparison-table"' in page
    missing_row = next(line for line in page.splitlines() if "02_contextual_attention (missing)" in line)
    assert missing_row.count(f">{MISSING}<") >= 14 and "href" not in missing_row and re.search(r">0(\.0+)?<", missing_row) is None
    unet_row = next(line for line in page.splitlines() if line.startswith('<tr class="ok"><th>unet<'))
    assert unet_row.count('href="01_unet_baseline.html"') == 17 - 5  # every number it has
    assert unet_row.count(">n/a<") == 2 + 3 and ">14.00<" in unet_row  # mIoU x2, and no seed spread or budget and ">75,471<" in unet_row
    local = table_html(rows, runs_root, href=run_href(tmp_path / "runs" / "09_comparison" / "smoke-z9"))
    assert 'href="../../01_unet_baseline/smoke-u1/notebook.ipynb"' in local


def test_provenance_and_budget_notes(runs_root):
    runs = collect(runs_root, "smoke", EXPECTED, exclude=["09_comparison"])
    prov = provenance_table(runs, runs_root)
    assert prov.loc["01_unet_baseline", "commit"] == "abcdef1234" and prov.loc["02_contextual_attention", "run"] == MISSING
    notes = budget_notes(model_rows(runs))
    assert notes == ["image size differs from the usual 32: biharmonic (05) (64), swap (64)",
                     "evaluation images differs from the usual 12: biharmonic (05) (30), swap (30)"]


def test_inpainter_spec_round_trip_and_grid(tmp_path):
    torch.manual_seed(0)
    root = tmp_path / "runs"
    folder = _run(root, "01_unet_baseline", "u1", {})
    generator = UNetInpainter([4, 8]).eval()
    (folder / "checkpoints").mkdir()
    save_weights(generator, folder / "checkpoints" / "g.safetensors")
    spec = inpainter_spec(UNetInpainter, {"channels": [4, 8]}, folder / "checkpoints" / "g.safetensors", folder)
    assert spec == {"factory": "inpaintlib.models.unet:UNetInpainter", "kwargs": {"channels": [4, 8]},
                    "weights": "checkpoints/g.safetensors"}
    results = {"biharmonic": _result(11.0), "unet": _result(14.0, inpainter=spec), "plain": _result(12.0),
               "broken": _result(12.0, inpainter=spec | {"weights": "checkpoints/none.safetensors"})}
    (folder / "metrics.json").write_text(json.dumps({"results": results}))
    write_config(folder, json.loads((folder / "config.json").read_text()))  # the run as it finished
    rows = model_rows(collect(root, "smoke", ["01_unet_baseline", "02_contextual_attention"]))
    images = torch.rand(3, 3, 32, 32)
    masks = torch.zeros(3, 1, 32, 32)
    masks[..., 8:20, 10:24] = 1
    inpaint, _ = load_inpainter(rows[1])
    with torch.no_grad():
        assert torch.allclose(inpaint(images * (1 - masks), masks), generator(images * (1 - masks), masks))
    columns, skipped = example_grid(rows, images, masks)
    assert list(columns) == ["input", "biharmonic", "unet", "ground truth"]
    expected_unet = masks * generator(images * (1 - masks), masks).detach() + (1 - masks) * images
    assert torch.allclose(columns["unet"], expected_unet)
    assert torch.allclose(columns["biharmonic"], masks * biharmonic_inpaint(images * (1 - masks), masks) + (1 - masks) * images)
    assert "no inpainter spec" in skipped["plain"] and "CheckpointError" in skipped["broken"]
    assert skipped["02_contextual_attention"] == MISSING
    with pytest.raises(ValueError, match="not inside the run folder"):
        inpainter_spec(UNetInpainter, {}, tmp_path / "elsewhere.safetensors", folder)
    with pytest.raises(ValueError, match="must live in inpaintlib"):
        inpainter_spec(torch.nn.Linear, {}, folder / "g.safetensors", folder)


def test_perceptual_scores_compare_each_output_with_the_ground_truth():
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outputs = {"perfect": images.clone(), "grey": torch.full_like(images, 0.5)}
    lpips = LPIPS()  # random weights: the formula, not LPIPS
    extractor = lambda x: x.mean(dim=(2, 3))  # noqa: E731  mean colour features
    scores = perceptual_scores(outputs, images, lpips=lpips, extractor=extractor, batch_size=4)
    assert scores["perfect"]["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert scores["perfect"]["frechet"] == pytest.approx(0.0, abs=1e-9)
    assert scores["grey"]["lpips"] > 0 and scores["grey"]["frechet"] > 0
    assert perceptual_scores(outputs, images) == {"perfect": {}, "grey": {}}


def _trained(psnr: float, images_seen: int, scores: list[list[float]]) -> dict:
    return _result(psnr, n=len(scores[0]), budget={"images_seen": images_seen, "train_seconds": 10.0},
                   seed_spread={"seeds": list(range(len(scores))), "std": 0.1}, scores={"psnr_hole": scores})


def test_main_table_never_mixes_budgets(tmp_path):
    root = tmp_path / "runs"
    _run(root, "01_unet_baseline", "u", {"telea": _result(15.0, n=3), "unet": _trained(16.0, 3200, [[16, 16, 16], [16.2, 16, 16]]),
                                         "unet_long": _trained(17.0, 32000, [[17, 17, 17], [17, 17, 17]])})
    same_unet = _trained(16.0, 3200, [[16, 16, 16], [16.2, 16, 16]])   # chapter 2's reference = chapter 1's U-Net
    _run(root, "02_contextual_attention", "d", {"deepfill_ca": _trained(15.5, 3200, [[15, 16, 15.5], [15.5, 15.5, 15.5]]),
                                                "old": _result(15.0), "unet": same_unet})
    rows = model_rows(collect(root, "smoke", EXPECTED[:2]))
    equal, other = split_by_budget(rows, 3200)
    assert [r.label for r in equal] == ["telea", "unet", "deepfill_ca"]
    assert [r.label for r in other] == ["unet_long", "old"]
    assert {_numbers_of(r)["images_seen"] for r in equal if r.model != "telea"} == {3200}
    assert "images seen differs from the usual 3,200: unet_long (32,000)" in budget_notes(rows)
    table = comparison_table(equal, root)
    assert table.loc["unet", "seeds"] == 2 and table.loc["unet", "psnr_hole_seed_std"] == 0.1


def _numbers_of(row):
    from inpaintlib.compare import _numbers

    return _numbers(row)


def test_paired_versus_uses_each_models_own_seeds(tmp_path):
    root = tmp_path / "runs"
    _run(root, "01_unet_baseline", "u", {"unet": _trained(16.0, 3200, [[16, 16.5, 17], [16.1, 16.6, 17.1], [16.2, 16.7, 17.2]]),
                                         "single": _trained(16.0, 3200, [[16, 16, 16]])})
    rows = model_rows(collect(root, "smoke", EXPECTED[:1]))
    out = paired_versus(rows, np.array([15.0, 15.5, 16.0]))
    assert list(out) == ["unet"]                       # one seed gives no interval
    assert out["unet"]["delta_mean"] == pytest.approx(1.1) and out["unet"]["verdict"] == "helps"
    assert seed_scores(rows[1]).shape == (1, 3) and paired_versus(rows, np.zeros(4)) == {}


def test_every_seed_of_a_model_is_scored_on_another_benchmark_and_compared_with_the_floor(tmp_path):
    root = tmp_path / "runs"
    folder = _run(root, "01_unet_baseline", "u1", {})
    generators = {}
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        generators[seed] = UNetInpainter([4, 8]).eval()
        (folder / "checkpoints/book/unet").mkdir(parents=True, exist_ok=True)
        save_weights(generators[seed], folder / f"checkpoints/book/unet/seed{seed}.safetensors")
    spec = inpainter_spec(UNetInpainter, {"channels": [4, 8]}, folder / "checkpoints/book/unet/seed0.safetensors", folder)
    scores = [[14.0 + s, 15.0 + s, 16.0] for s in (0, 0.1, 0.2)]
    results = {"biharmonic": _result(11.0, n=3), "unet": _trained(15.0, 64, scores) | {"inpainter": spec},
               "plain": _trained(14.0, 64, scores)}
    results["unet"]["seed_spread"]["seeds"] = [0, 1, 2, 3]  # seed 3's weights are missing: left out
    (folder / "metrics.json").write_text(json.dumps({"results": results}))
    write_config(folder, json.loads((folder / "config.json").read_text()))
    rows = model_rows(collect(root, "smoke", ["01_unet_baseline"]))
    unet = next(r for r in rows if r.label == "unet")
    assert seed_weights(unet) == {s: f"checkpoints/book/unet/seed{s}.safetensors" for s in (0, 1, 2)}
    bench = Benchmark.from_images(torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)), 1, "toy")
    evaluations, skipped = seed_evaluations(rows, bench)
    assert len(evaluations["unet"]) == 3 and len(evaluations["biharmonic"]) == 1 and "no inpainter spec" in skipped["plain"]
    for seed, result in zip((0, 1, 2), evaluations["unet"]):   # each seed's own weights
        expected = evaluate(generators[seed], bench, progress=False).per_image["psnr_hole"]
        assert torch.allclose(result.per_image["psnr_hole"], expected)
    versus = versus_reference(evaluations, "biharmonic")
    diffs = np.stack([r.per_image["psnr_hole"].numpy() for r in evaluations["unet"]]) - \
        evaluations["biharmonic"][0].per_image["psnr_hole"].numpy()
    assert list(versus) == ["unet"] and versus["unet"]["delta_mean"] == pytest.approx(float(diffs.mean()), rel=1e-5)
    scenes = {"unet": {"delta_mean": 1.0, "ci95": [0.5, 1.5], "verdict": "helps"}}
    table = transfer_table(rows, evaluations, versus, scenes)
    assert table.loc["unet", "seeds"] == 3 and table.loc["unet", "Scenes psnr_hole"] == 15.0
    assert table.loc["unet", "Scenes: minus floor [95 % CI]"] == "+1.00 [+0.50, +1.50]"
    assert table.loc["biharmonic", "photos: minus floor [95 % CI]"] == "n/a"
    summary = transfer_summary(versus, scenes, "biharmonic")
    assert summary.startswith("On Scenes: 1 better than biharmonic, 0 worse, 0 not told apart (of 1).")
    assert f"{versus['unet']['delta_mean'] - 1.0:+.2f} dB on average" in summary


def test_budget_notes_name_models_trained_on_other_data(tmp_path):
    root = tmp_path / "runs"
    _run(root, "01_unet_baseline", "u", {"unet": _trained(16.0, 3200, [[16, 16, 16], [16.2, 16, 16]])})
    folder = _run(root, "02_contextual_attention", "d", {"deepfill_ca": _trained(15.5, 3200, [[15, 16, 15.5], [15.5, 15.5, 15.5]])})
    metrics = json.loads((folder / "metrics.json").read_text()) | {"data": {"name": "flat", "root": "/photos"}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_config(folder, json.loads((folder / "config.json").read_text()))
    notes = budget_notes(model_rows(collect(root, "smoke", EXPECTED[:2])))
    assert notes == ["trained and scored on different data: unet (scenes), deepfill_ca (flat /photos)"]


def test_curve_slopes_are_fitted_per_seed_on_log2_images_and_read_off_their_interval(tmp_path):
    root = tmp_path / "runs"
    budget = {"images_seen": 3200, "pretrained_images": 0}
    seen = [800, 1600, 2400, 3200]

    def curve(slope: float, start: float) -> list[dict]:
        return [{"images_seen": x, "psnr_hole": start + slope * math.log2(x / 800)} for x in seen]

    runs = [{"arm": "rising", "seed": k, "budget": budget, "curve": curve(s, 12.0)} for k, s in enumerate((1.0, 1.2, 0.8))]
    runs += [{"arm": "flat", "seed": k, "budget": budget, "curve": curve(s, 15.0)} for k, s in enumerate((0.3, -0.3, 0.0))]
    runs += [{"arm": "rising", "seed": 0, "budget": {"images_seen": 99}, "curve": curve(5.0, 0.0)}]   # another budget
    experiment = {"experiment": {"curve_per_bucket": 10}, "runs": runs}
    results = {name: _trained(14.0, 3200, [[14, 14], [14, 14], [14, 14]]) for name in ("rising", "flat", "single")}
    folder = _run(root, "02_contextual_attention", "d", results)
    (folder / "metrics.json").write_text(json.dumps({"results": results, "experiment": experiment}))
    write_config(folder, json.loads((folder / "config.json").read_text()))
    rows = {r.label: r for r in model_rows(collect(root, "smoke", EXPECTED[:2]))}
    rising = curve_slope(rows["rising"])
    # the last three points lie on one line in log2(images): each seed's slope is exact
    assert rising["per_seed"] == pytest.approx([1.0, 1.2, 0.8]) and rising["slope"] == pytest.approx(1.0)
    assert rising["trend"] == "rising" and rising["images_seen"] == 3200 and rising["curve_per_bucket"] == 10
    assert rising["final"] == pytest.approx(14.0)  # 12 + 1.0 * log2(4)
    assert curve_slope(rows["flat"])["trend"] == "flat" and curve_slope(rows["single"]) is None
    table = limits_table(list(rows.values()), floor_value=16.0, floor="telea")
    assert list(table.index) == ["rising", "flat"]
    assert table.loc["rising", "gap to telea"] == pytest.approx(2.0)
    assert table.loc["rising", "images to reach the floor (extrapolated)"] == f"{3200 * 2 ** 2.0:,.0f}"
    assert table.loc["flat", "images to reach the floor (extrapolated)"] == "n/a (not rising)"
