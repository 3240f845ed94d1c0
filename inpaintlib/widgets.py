"""Interactive controls for the chapters (ipywidgets), with their logic testable without a browser.

The rendered book cannot run a kernel, so every chapter that shows one of these also draws a static
figure with the same callback for a few fixed choices.
"""

from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

PixelCallback = Callable[[int, int], "plt.Figure | None"]


def clamp_pixel(row: int, col: int, shape: tuple[int, int]) -> tuple[int, int]:
    """(row, col) moved inside an image of ``shape = (H, W)``."""
    return min(max(int(row), 0), shape[0] - 1), min(max(int(col), 0), shape[1] - 1)


def nearest_pixel_in(region: torch.Tensor | np.ndarray, row: int, col: int) -> tuple[int, int]:
    """The pixel of ``region`` (H, W) bool, True = allowed, closest to (row, col) in Euclidean distance.

    Ties go to the first pixel in raster order. Raises ValueError when the region is empty or not 2-D.
    """
    allowed = torch.as_tensor(np.asarray(region)).to(torch.bool)
    if allowed.ndim != 2:
        raise ValueError(f"region must be a 2-D (H, W) map; got shape {tuple(allowed.shape)}")
    if not bool(allowed.any()):
        raise ValueError("region has no allowed pixel")
    rows, cols = torch.nonzero(allowed, as_tuple=True)  # raster order
    squared = (rows - int(row)) ** 2 + (cols - int(col)) ** 2
    best = int(torch.argmin(squared))  # first minimum
    return int(rows[best]), int(cols[best])


def pixel_picker(
    image: torch.Tensor,
    callback: PixelCallback,
    *,
    region: torch.Tensor | np.ndarray | None = None,
    initial: tuple[int, int] | None = None,
):
    """Two sliders (row, column) over ``image`` (..., H, W) that call ``callback(row, col)`` on every change.

    With ``region`` (H, W) bool, the chosen pixel snaps to the nearest allowed one (e.g. a hole pixel).
    The callback draws a matplotlib figure and may return it; the picker shows it below the sliders and
    closes it. Returns the ``ipywidgets.VBox`` (children: the sliders' box, a status label, the output).
    """
    import ipywidgets as widgets
    from IPython.display import display

    shape = tuple(image.shape[-2:])
    if region is not None and tuple(np.asarray(region).shape) != shape:
        raise ValueError(f"region shape {tuple(np.asarray(region).shape)} does not match the image size {shape}")
    start = clamp_pixel(*(initial or (shape[0] // 2, shape[1] // 2)), shape)
    if region is not None:
        start = nearest_pixel_in(region, *start)
    row = widgets.IntSlider(value=start[0], min=0, max=shape[0] - 1, description="row", continuous_update=False)
    col = widgets.IntSlider(value=start[1], min=0, max=shape[1] - 1, description="column", continuous_update=False)
    status = widgets.Label()
    output = widgets.Output()

    def redraw(_change: object = None) -> None:
        chosen = (row.value, col.value) if region is None else nearest_pixel_in(region, row.value, col.value)
        status.value = f"pixel (row {chosen[0]}, column {chosen[1]})" + (
            " - snapped to the nearest allowed pixel" if chosen != (row.value, col.value) else ""
        )
        with output:
            output.clear_output(wait=True)
            figure = callback(*chosen)
            if figure is not None:
                display(figure)
                plt.close(figure)

    row.observe(redraw, names="value")
    col.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([row, col]), status, output])
