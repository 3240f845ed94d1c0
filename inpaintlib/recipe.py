"""Training recipes: how a model is optimised, kept apart from what the model is.

Every chapter trains its model at the ``cpu`` preset with one shared recipe, ``book``, so that a
difference between two chapters' models is a difference between the models, not between their
optimisers. Each paper's own recipe stays available as ``paper``:

| recipe | Adam betas | learning rate | weights evaluated | adversarial terms |
|---|---|---|---|---|
| ``book``  | (0.9, 0.999) | 2e-3 for every model: linear warm-up over the first 5 % of steps, cosine decay to zero | exponential moving average (EMA) | off |
| ``paper`` | the paper's (e.g. (0.5, 0.9) for DeepFill v1) | the chapter's, constant | the last step's | the paper's weights |

The book recipe was chosen by measuring it against each paper's recipe on six models at the ``cpu``
budget (``scripts/recipe_study.py``; the book's page on experiments gives the table); one learning rate
for all models is what keeps it one recipe.

The learning rate at step ``t`` of ``T`` is ``lr * factor(t)`` with (warm-up of ``W`` steps)

    factor(t) = (t + 1) / W                                        for t < W
              = (1 + cos(pi * (t - W) / (T - W))) / 2              otherwise (cosine decay).

The EMA after step ``t`` is ``ema <- d_t * ema + (1 - d_t) * weights`` with ``d_t = min(ema_decay,
(1 + t) / (10 + t))``: the warm-up of ``d_t`` keeps the first weights from dominating a short run
(with a plain 0.999, 67 % of the average after 400 steps would still be the random initialisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """An optimisation recipe; ``None`` (learning rate, betas) keeps each method's own (its paper's)."""

    name: str
    lr: float | None = None      # base learning rate of every optimiser; None keeps each method's own
    betas: tuple[float, float] | None = None
    warmup: float = 0.0          # fraction of the steps with a linear warm-up of the learning rate
    cosine_decay: bool = False   # decay the learning rate to zero over the run
    ema_decay: float = 0.0       # 0: evaluate the last weights; else an EMA of the weights
    adversarial: bool = True     # whether the paper's adversarial terms are trained

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")

    def warmup_steps(self, total: int) -> int:
        return max(1, round(self.warmup * total)) if self.warmup > 0 else 0

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of the base learning rate for the update at ``step`` (0-based) of ``total``."""
        warm = self.warmup_steps(total)
        if step < warm:
            return (step + 1) / warm
        if not self.cosine_decay or total <= warm:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / (total - warm)))

    def ema_factor(self, step: int) -> float:
        """``d_t``: the weight the average keeps after the update at ``step`` (0-based)."""
        return min(self.ema_decay, (1.0 + step) / (10.0 + step))

    def adversarial_weight(self, weight: float) -> float:
        """The paper's adversarial weight under this recipe (0 when adversarial terms are off)."""
        return weight if self.adversarial else 0.0


RECIPES: dict[str, Recipe] = {
    "book": Recipe("book", lr=2e-3, betas=(0.9, 0.999), warmup=0.05, cosine_decay=True, ema_decay=0.999,
                   adversarial=False),
    "paper": Recipe("paper"),
}


def get_recipe(name: str | Recipe) -> Recipe:
    """The recipe called ``name`` (``"book"`` or ``"paper"``); a ``Recipe`` is returned as it is."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]
