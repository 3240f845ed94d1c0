"""Pictures: grids of masked input / output / ground truth, label maps in colour, loss curves."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from inpaintlib.data.scenes import CLASS_COLOURS, CLASS_NAMES

HOLE_COLOUR = (1.0, 1.0, 1.0)


def masked_for_display(image: torch.Tensor, mask: torch.Tensor, colour: Sequence[float] = HOLE_COLOUR) -> torch.Tensor:
    """``(B,3,H,W)`` image with its hole painted ``colour`` (white by default), for figures."""
    fill = torch.tensor(colour, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return image * (1 - mask) + fill * mask


def colorize_labels(labels: torch.Tensor, palette: np.ndarray | None = None) -> torch.Tensor:
    """Label map ``(B,H,W)`` or ``(H,W)`` long -> RGB ``(B,3,H,W)`` / ``(3,H,W)`` in [0,1].

    The default palette is each Scenes class's mean colour, so label maps read like the scenes.
    Values outside the palette (e.g. 255 = ignore) are drawn black.
    """
    palette = CLASS_COLOURS if palette is None else palette
    table = torch.zeros(256, 3)
    table[: len(palette)] = torch.as_tensor(palette, dtype=torch.float32)
    rgb = table[labels.long().clamp(0, 255)]
    return rgb.movedim(-1, -3)


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    img = img.detach().float().cpu()
    if img.shape[0] == 1:
        return img[0].numpy()
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def show_grid(columns: dict[str, torch.Tensor], max_rows: int = 4, size: float = 1.8, title: str | None = None):
    """One column per entry (e.g. masked input, output, ground truth), one row per image.

    Each value is ``(B,3,H,W)`` in [0,1] or ``(B,1,H,W)`` (shown in grey). Returns the figure.
    """
    rows = min(max_rows, min(len(v) for v in columns.values()))
    fig, axes = plt.subplots(rows, len(columns), figsize=(size * len(columns), size * rows), squeeze=False)
    for c, (name, images) in enumerate(columns.items()):
        for r in range(rows):
            ax = axes[r, c]
            img = _to_hwc(images[r])
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_legend(ax, names: Sequence[str] = CLASS_NAMES, palette: np.ndarray = CLASS_COLOURS) -> None:
    """Add a legend of the class colours to ``ax``."""
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=palette[i], label=n) for i, n in enumerate(names)], loc="center left",
              bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def plot_loss_curves(curves: dict[str, list[tuple[int, float]]], title: str = "training losses"):
    """Plot ``{term: [(step, value), ...]}`` (e.g. ``Trainer.loss_curve()``) on a log scale."""
    fig, ax = plt.subplots(figsize=(6, 3))
    for term, points in curves.items():
        steps, values = zip(*points)
        ax.plot(steps, np.abs(values), label=term)
    ax.set_yscale("log")
    ax.set_ylabel("loss term (log scale)")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(curves: dict[str, list[dict]], baselines: dict[str, float] | None = None,
                         ylabel: str = "in-hole PSNR (dB)", title: str | None = None, log_x: bool = False):
    """Mean ± one seed standard deviation against images seen, one line per model.

    ``curves``: ``{model: [{"images_seen", "mean", "std"}, ...]}`` (``ExperimentResult.curves()``);
    ``baselines``: horizontal lines for methods that do not train (e.g. ``{"Telea": 16.5}``);
    ``log_x``: images seen on a log scale (to show a short and a long run together).
    """
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (name, points) in enumerate(curves.items()):
        seen = np.array([p["images_seen"] for p in points])
        mean, std = np.array([p["mean"] for p in points]), np.array([p["std"] for p in points])
        ax.plot(seen, mean, marker="o", color=f"C{i}", label=name)
        ax.fill_between(seen, mean - std, mean + std, color=f"C{i}", alpha=0.15)
    for j, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, color="0.3", linestyle=("--", ":", "-.")[j % 3], linewidth=1, label=name)
    ax.set_xlabel("training images seen")
    ax.set_ylabel(ylabel)
    if log_x:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_intervals(rows: dict[str, dict], xlabel: str = "difference in in-hole PSNR (dB)", title: str | None = None):
    """One horizontal bar per comparison: its mean paired difference, 95 % interval and seed means.

    ``rows``: ``{label: {"delta_mean", "ci95": [lo, hi], "per_seed": [...], "verdict"}}`` (the
    ``ablation`` entries of ``metrics.json``). The zero line is where "no effect" lies.
    """
    fig, ax = plt.subplots(figsize=(6, 0.55 * len(rows) + 1.1))
    for y, (label, row) in enumerate(rows.items()):
        lo, hi = row["ci95"]
        colour = {"helps": "C2", "hurts": "C3"}.get(row.get("verdict"), "0.4")
        ax.plot([lo, hi], [y, y], color=colour, linewidth=3, solid_capstyle="butt")
        ax.plot(row["delta_mean"], y, "o", color=colour)
        ax.plot(row.get("per_seed", []), [y] * len(row.get("per_seed", [])), "|", color="k", markersize=10)
    ax.axvline(0, color="0.5", linewidth=1)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
