"""Training batches that are a pure function of the step, so a resumed run sees exactly the same data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inpaintlib.data.scenes import ScenesDataset
from inpaintlib.masks import boundary_crossing_mask, free_form_mask, rectangle_mask

MASK_KINDS = ("free_form", "rectangle")


def training_masks(count: int, size: int, seed: int, rectangle_fraction: float = 0.25) -> torch.Tensor:
    """A pool of ``count`` training masks ``(count, 1, size, size)``: free-form strokes and boxes."""
    rng = np.random.default_rng([seed, 31337])
    masks = [
        rectangle_mask(rng, size, 0.15, 0.6)
        if rng.uniform() < rectangle_fraction
        else free_form_mask(rng, size, max_strokes=int(rng.integers(1, 7)))
        for _ in range(count)
    ]
    return torch.from_numpy(np.stack(masks))[:, None]


@dataclass
class InpaintingBatches:
    """``batches(step)`` -> ``{"image", "mask", "labels", "present"}`` drawn from fixed pools.

    Images, labels and multi-labels come from ``images``/``labels``/``present`` (N items); masks from
    ``masks`` (M items), paired at random, or, for a ``boundary_fraction`` of each batch, the
    image's own boundary-crossing mask from ``boundary_masks`` (N items). Random horizontal flips.
    """

    images: torch.Tensor
    labels: torch.Tensor
    present: torch.Tensor
    masks: torch.Tensor
    batch_size: int
    seed: int = 0
    boundary_masks: torch.Tensor | None = None
    boundary_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.boundary_fraction > 0 and self.boundary_masks is None:
            raise ValueError("boundary_fraction > 0 needs boundary_masks")

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 7, step])
        idx = torch.from_numpy(rng.integers(0, len(self.images), self.batch_size))
        mask = self.masks[torch.from_numpy(rng.integers(0, len(self.masks), self.batch_size))]
        if self.boundary_fraction > 0:
            use_own = torch.from_numpy(rng.uniform(size=self.batch_size) < self.boundary_fraction)
            mask = torch.where(use_own[:, None, None, None], self.boundary_masks[idx], mask)
        image, labels = self.images[idx], self.labels[idx]
        flip = torch.from_numpy(rng.uniform(size=self.batch_size) < 0.5)
        image = torch.where(flip[:, None, None, None], image.flip(-1), image)
        labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
        mask = torch.where(flip[:, None, None, None], mask.flip(-1), mask)
        return {"image": image, "mask": mask, "labels": labels, "present": self.present[idx]}

    @classmethod
    def scenes(
        cls,
        size: int,
        train_images: int,
        batch_size: int,
        seed: int = 0,
        train_masks: int | None = None,
        boundary_fraction: float = 0.0,
        progress: bool = False,
    ) -> "InpaintingBatches":
        """Batches over ``train_images`` training scenes and a pool of free-form/box masks."""
        data = ScenesDataset(train_images, size=size, seed=seed, split="train").materialize(progress=progress)
        masks = training_masks(train_masks or train_images, size, seed)
        boundary = None
        if boundary_fraction > 0:
            rng = np.random.default_rng([seed, 4242])
            boundary = torch.from_numpy(np.stack([boundary_crossing_mask(rng, lab.numpy()) for lab in data["labels"]]))[:, None]
        return cls(data["image"], data["labels"], data["present"], masks, batch_size, seed, boundary, boundary_fraction)
