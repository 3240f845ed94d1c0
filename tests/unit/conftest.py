"""Shared fixtures of the unit tests."""

import math

import pytest
import torch

from inpaintlib.train import Method


class PlainSteps:
    """Calls ``method.training_step`` with a plain update (sum the terms, backward, optimiser step),
    keeping the optimisers across calls; each call returns every term as ``{"optimiser/term": float}``."""

    def __init__(self, method: Method):
        self.method = method
        self.optimizers = method.configure_optimizers()

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        logged: dict[str, float] = {}

        def update(name: str, terms: dict[str, torch.Tensor]) -> torch.Tensor:
            logged.update({f"{name}/{k}": float(v.detach()) for k, v in terms.items()})
            total = sum(terms.values())
            self.optimizers[name].zero_grad()
            total.backward()
            self.optimizers[name].step()
            return total

        self.method.training_step(batch, update)
        assert all(math.isfinite(v) for v in logged.values()), logged
        return logged


@pytest.fixture
def plain_steps() -> type[PlainSteps]:
    return PlainSteps
