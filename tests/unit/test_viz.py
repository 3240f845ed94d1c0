import matplotlib

matplotlib.use("Agg")
import torch

from inpaintlib.data.scenes import CLASS_COLOURS
import numpy as np

from inpaintlib.viz import colorize_labels, masked_for_display, plot_intervals, plot_learning_curves, show_grid


def test_colorize_uses_the_class_palette_and_black_for_ignore():
    labels = torch.tensor([[0, 3], [6, 255]])
    rgb = colorize_labels(labels)
    assert rgb.shape == (3, 2, 2)
    assert torch.allclose(rgb[:, 0, 1], torch.tensor(CLASS_COLOURS[3]))
    assert torch.equal(rgb[:, 1, 1], torch.zeros(3))


def test_masked_display_paints_only_the_hole():
    image, mask = torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    mask[..., 2:4, 2:4] = 1
    shown = masked_for_display(image, mask)
    assert torch.equal(shown[..., 2:4, 2:4], torch.ones(1, 3, 2, 2))
    assert torch.equal(shown[..., 5:, 5:], image[..., 5:, 5:])


def test_grid_has_one_axis_per_cell():
    fig = show_grid({"a": torch.rand(3, 3, 8, 8), "b": torch.rand(3, 1, 8, 8)}, max_rows=2)
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "a"


def test_learning_curves_plot_means_and_baselines():
    curves = {"a": [{"images_seen": 8, "mean": 10.0, "std": 0.5}, {"images_seen": 16, "mean": 12.0, "std": 0.2}],
              "b": [{"images_seen": 8, "mean": 9.0, "std": 0.0}, {"images_seen": 16, "mean": 11.0, "std": 0.1}]}
    fig = plot_learning_curves(curves, baselines={"Telea": 11.5})
    ax = fig.axes[0]
    assert [tuple(line.get_ydata()) for line in ax.lines[:2]] == [(10.0, 12.0), (9.0, 11.0)]
    assert list(ax.lines[2].get_ydata()) == [11.5, 11.5]
    assert ax.get_xlabel() == "training images seen" and ax.get_ylabel()


def test_interval_plot_draws_each_interval():
    rows = {"x": {"delta_mean": 0.2, "ci95": [0.1, 0.3], "per_seed": [0.15, 0.25], "verdict": "helps"},
            "y": {"delta_mean": -0.1, "ci95": [-0.4, 0.2], "per_seed": [0.0], "verdict": "no detectable effect"}}
    ax = plot_intervals(rows).axes[0]
    assert np.allclose(ax.lines[0].get_xdata(), [0.1, 0.3]) and np.allclose(ax.lines[3].get_xdata(), [-0.4, 0.2])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
