"""Data: the procedural Scenes benchmark and folder data sets for user-supplied photos."""

from inpaintlib.data.scenes import CLASS_NAMES, NUM_CLASSES, ScenesDataset, render_scene

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "ScenesDataset", "render_scene"]
