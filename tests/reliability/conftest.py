"""Fixtures of the reliability tests (helpers in ``reliability_helpers``)."""

from __future__ import annotations

import os

import pytest
from reliability_helpers import FakePapermill


@pytest.fixture
def fake_papermill(monkeypatch):
    import papermill

    import inpaintlib.runner

    fake = FakePapermill()
    monkeypatch.setattr(papermill, "execute_notebook", fake)
    monkeypatch.setattr(inpaintlib.runner, "_device_description", lambda device: {"requested": device})
    return fake


@pytest.fixture
def clean_environment(monkeypatch):
    """No INPAINTLIB_* variables (weight files) from the developer's shell."""
    for name in [n for n in os.environ if n.startswith("INPAINTLIB_")]:
        monkeypatch.delenv(name)
