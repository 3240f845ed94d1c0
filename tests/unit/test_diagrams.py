"""Tests of inpaintlib.diagrams: the traced blocks follow the model's own modules and shapes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from inpaintlib.diagrams import Block, draw_architecture, trace_blocks


class Marker(nn.Module):
    """Stands for "the paper's module": a 1x1 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return self.conv(x)


class Stage(nn.Module):
    def __init__(self, marker: bool):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.middle = Marker(8) if marker else nn.Conv2d(8, 8, 1)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return self.up(self.middle(self.down(x)))


class TwoStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Stage(marker=False)
        self.second = Stage(marker=True)

    def forward(self, image, mask):
        coarse = self.first(image * (1 - mask))
        return self.second(coarse), coarse  # a tuple: the first 4-D tensor is the output


def _inputs():
    return torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)


def test_top_level_calls_in_call_order_with_their_output_shapes():
    blocks = trace_blocks(TwoStage(), _inputs())
    assert [(b.name, b.kind, b.channels, b.height) for b in blocks] == [("first", "Stage", 3, 16), ("second", "Stage", 3, 16)]
    assert all(b.row == "TwoStage" and b.highlight is None for b in blocks)


def test_expanded_stages_get_rows_and_the_marker_labels_its_block():
    blocks = trace_blocks(TwoStage(), _inputs(), expand=("first", "second"), rows={"first": "stage 1", "second": "stage 2"},
                          highlight={Marker: "paper's module"})
    assert blocks == [
        Block("first.down", "Sequential", "stage 1", 8, 8, 8),
        Block("first.middle", "Conv2d", "stage 1", 8, 8, 8),
        Block("first.up", "Sequential", "stage 1", 3, 16, 16),
        Block("second.down", "Sequential", "stage 2", 8, 8, 8),
        Block("second.middle", "Marker", "stage 2", 8, 8, 8, "paper's module"),
        Block("second.up", "Sequential", "stage 2", 3, 16, 16),
    ]


def test_a_highlighted_module_inside_an_unexpanded_block_marks_that_block():
    blocks = trace_blocks(TwoStage(), _inputs(), highlight={"Marker": "M"})
    assert [b.highlight for b in blocks] == [None, "M"]


def test_parameterless_modules_are_skipped_unless_asked_for():
    model = TwoStage()
    names = [b.name for b in trace_blocks(model, _inputs(), expand=("first", "first.down"))]
    assert "first.down.1" not in names and "first.down.0" in names  # the ReLU is skipped
    names = [b.name for b in trace_blocks(model, _inputs(), expand=("first", "first.down"), skip_parameterless=False)]
    assert "first.down.1" in names


def test_the_diagram_follows_a_change_of_the_model():
    model = TwoStage()
    before = trace_blocks(model, _inputs(), expand=("second",))
    model.second.down[0] = nn.Conv2d(3, 12, 3, stride=4, padding=1)
    model.second.middle = Marker(12)
    model.second.up[0] = nn.Upsample(scale_factor=4)
    model.second.up[1] = nn.Conv2d(12, 3, 3, padding=1)
    after = trace_blocks(model, _inputs(), expand=("second",))
    assert (before[1].channels, before[1].height) == (8, 8) and (after[1].channels, after[1].height) == (12, 4)


def test_unknown_names_and_hooks_left_behind_are_errors():
    model = TwoStage()
    with pytest.raises(ValueError, match="does not have"):
        trace_blocks(model, _inputs(), expand=("third",))
    trace_blocks(model, _inputs())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.training  # the mode is restored


def test_draw_makes_one_box_per_block_and_labels_the_paper_module():
    model = TwoStage()
    fig = draw_architecture(model, _inputs(), expand=("first", "second"), highlight={Marker: "paper's module"}, title="toy")
    ax = fig.axes[0]
    assert len(ax.patches) == 6
    texts = [t.get_text() for t in ax.texts]
    assert "paper's module" in texts and "second.middle".split(".", 1)[1] in texts
    assert min(t.get_fontsize() for t in ax.texts) >= 8
    plt.close(fig)


def test_every_book_model_can_be_drawn():
    from inpaintlib.attention.contextual import ContextualAttention
    from inpaintlib.models.coherence import SWAP, CoherenceGenerator
    from inpaintlib.models.csa import AttentionSlot, CSAGenerator
    from inpaintlib.models.deepfill import DeepFillGenerator
    from inpaintlib.models.lbp import LBPInpainter, PerSampleTopTAttention
    from inpaintlib.models.saca import SACA, SACAGenerator
    from inpaintlib.models.sge import SGEGenerator
    from inpaintlib.models.spl import SPLGenerator
    from inpaintlib.models.unet import UNetInpainter
    from inpaintlib.nn.region_norm import SpadeResnetBlock
    from inpaintlib.nn.spade import SGMBlock

    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 10:22] = 1
    cases = [
        (UNetInpainter((4, 8, 8)), {}, None),
        (DeepFillGenerator(4, 1), {"expand": ("coarse",)}, {ContextualAttention: "CA"}),
        (CSAGenerator([4, 8, 8, 8], [4, 8, 8, 8], 4, "csa", "instance"), {"expand": ("rough", "refine")}, {AttentionSlot: "CSA"}),
        (SGEGenerator([4, 8, 8], 2, q=0.5, sgm_hidden=4), {}, {SGMBlock: "SGM"}),
        (CoherenceGenerator(4), {"expand": ("encoder",)}, {SWAP: "SWAP"}),
        (SACAGenerator(4), {}, {SACA: "SACA"}),
        (SPLGenerator(channels=8, prior_channels=8, middle_blocks=1, rdb_blocks=1, rdb_layers=1, rdb_growth=4,
                      prior_res_blocks=1, spade_hidden=4, teacher_channels=4), {"expand": ("prior",)}, {SpadeResnetBlock: "SPADE"}),
        (LBPInpainter((4, 8, 8, 8), (4, 8, 8, 8)), {"expand": ("image_net", "image_net.unet")}, {PerSampleTopTAttention: "attention"}),
    ]
    for model, options, highlight in cases:
        blocks = trace_blocks(model, (image, mask), highlight=highlight, **options)
        assert blocks, type(model).__name__
        if highlight:
            assert any(b.highlight for b in blocks), f"{type(model).__name__}: the paper's module is not marked"
