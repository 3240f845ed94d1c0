"""The model benchmark harness (benchmarks/run_all.py): which methods it can build, and that one
measured row is made of positive, finite numbers. Speed itself is measured by the script, not here."""

import math

import pytest
import torch

from benchmarks.run_all import ModelSettings, _module_class, benchmark_model, construct_with_defaults, discover_methods
from inpaintlib.models.csa import CSAMethod
from inpaintlib.models.spl import SceneTeacher, SPLMethod
from inpaintlib.models.unet import UNetMethod


def test_module_class_reads_plain_and_optional_network_annotations():
    assert _module_class(SceneTeacher) is SceneTeacher
    assert _module_class(SceneTeacher | None) is SceneTeacher
    assert _module_class(int) is None
    assert _module_class(int | None) is None
    assert _module_class(None) is None


def test_spl_gets_an_untrained_teacher_so_it_can_be_benchmarked():
    method = construct_with_defaults(SPLMethod, image_size=32)
    assert isinstance(method.teacher, SceneTeacher)
    assert method.distill


def test_every_inpainting_method_is_discovered_and_constructible():
    found = {cls.__name__: cls for _, cls in discover_methods() if isinstance(cls, type)}
    assert {"UNetMethod", "DeepFillMethod", "CSAMethod", "SGEMethod", "CoherenceMethod", "SACAMethod", "SPLMethod",
            "LBPMethod"} <= set(found)
    for name in ("UNetMethod", "SGEMethod", "SACAMethod", "CoherenceMethod"):
        construct_with_defaults(found[name], image_size=32)


def test_a_required_argument_without_a_benchmark_default_is_refused():
    class NeedsRate(UNetMethod):
        def __init__(self, rate: float):
            super().__init__()

    with pytest.raises(TypeError, match="'rate' has no benchmark default"):
        construct_with_defaults(NeedsRate, image_size=32)


def test_one_model_row_is_positive_and_finite():
    settings = ModelSettings(image_size=16, batch_size=2, warmup=1, steps=1, repeats=1, amp=False, channels_last=False)
    row = benchmark_model(UNetMethod, torch.device("cpu"), settings)
    assert row["params"] > 0
    for key in ("train_ips", "infer_ips"):
        assert math.isfinite(row[key]) and row[key] > 0


def test_optional_networks_keep_their_default_when_the_class_accepts_it():
    method = construct_with_defaults(CSAMethod, image_size=64)
    assert not method.rough_frozen  # no rough stage passed in: the CSA default trains its own
