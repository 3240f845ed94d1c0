import matplotlib

matplotlib.use("Agg")
import torch

from inpaintlib.data.scenes import CLASS_COLOURS
from inpaintlib.viz import colorize_labels, masked_for_display, show_grid


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
