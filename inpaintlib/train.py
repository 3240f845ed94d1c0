"""One training loop for every model in the book.

A model plugs in as a ``Method``: its networks, its optimisers, what one training step does, and
how it inpaints. The ``Trainer`` owns everything else: seeding, the device, tqdm progress, periodic
evaluation, atomic safetensors checkpoints with exact resume, and stopping on a non-finite loss
with the step and the term named.

Exact resume works because batches are a pure function of the step (``batches(step)``), and the
checkpoint holds the weights, the optimiser states and the torch random state.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

Batch = dict[str, torch.Tensor]
CHECKPOINT_NAME = "latest.safetensors"


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the step and the term."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device; use device='auto' or 'cpu'")
    return dev


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Method(nn.Module):
    """A trainable inpainting method: subclasses build networks in ``__init__`` and implement three methods."""

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers, by name (e.g. ``{"g": ..., "d": ...}``)."""
        raise NotImplementedError

    def training_step(self, batch: Batch, update: "UpdateFn") -> None:
        """One step: compute loss terms and call ``update(optimiser_name, {term: weighted_loss})``."""
        raise NotImplementedError

    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B,3,H,W)`` masked image in [0,1] and ``(B,1,H,W)`` mask -> ``(B,3,H,W)`` prediction."""
        raise NotImplementedError


UpdateFn = Callable[[str, dict[str, torch.Tensor]], torch.Tensor]


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state into flat tensors (for safetensors) and JSON-able metadata."""
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{name}.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    prefix = f"optim.{name}."
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, entry = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[entry] = value
    for key, value in meta["scalars"].items():
        pid, entry = key.split(".", 1)
        state.setdefault(int(pid), {})[entry] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file via a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_weights(module: nn.Module, path: str | Path) -> None:
    """The module's ``state_dict`` as a safetensors file (atomic)."""
    atomic_save(dict(module.state_dict()), Path(path))


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load a safetensors ``state_dict``; a missing, corrupt or mismatched file raises ``CheckpointError``."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint not found: {path}") from err
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({err})") from err
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(f"checkpoint {path} does not match {type(module).__name__}: {first[1] if len(first) > 1 else first[0]}") from err


@dataclass
class Trainer:
    """Train ``method`` for ``steps`` steps on ``batches(step) -> dict`` of tensors.

    ``checkpoint_dir``: where ``latest.safetensors`` is written every ``checkpoint_every`` steps and
    at the end; if it already holds one, training resumes from it (``resume=True``).
    ``eval_fn(step) -> dict`` runs every ``eval_every`` steps and at the end; its results go to the history.
    """

    method: Method
    batches: Callable[[int], Batch]
    steps: int
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 0
    eval_fn: Callable[[int], dict] | None = None
    eval_every: int = 0
    log_every: int = 10
    device: str | torch.device = "auto"
    amp: bool = False
    progress: bool = True
    resume: bool = True
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        self.device = resolve_device(self.device)
        self.method.to(self.device)
        self.optimizers = self.method.configure_optimizers()
        self.step = 0
        self.train_seconds = 0.0
        self._terms: dict[str, float] = {}

    @property
    def checkpoint_path(self) -> Path | None:
        return Path(self.checkpoint_dir) / CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    def _update(self, name: str, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if name not in self.optimizers:
            raise KeyError(f"unknown optimiser {name!r}; the method has {sorted(self.optimizers)}")
        for term, value in terms.items():
            if not torch.isfinite(value).all():
                raise NonFiniteLossError(
                    f"step {self.step}: loss term '{name}/{term}' is {value.detach().float().flatten()[0].item()}"
                )
        total = sum(terms.values())
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        self._terms.update({f"{name}/{t}": float(v.detach()) for t, v in terms.items()})
        return total

    def save_checkpoint(self) -> None:
        """Weights, optimiser states and the torch random state at the current step."""
        if self.checkpoint_path is None:
            return
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v for k, v in self.method.state_dict().items()}
        meta: dict = {"step": self.step, "train_seconds": self.train_seconds, "history": self.history, "optim": {}}
        for name, opt in self.optimizers.items():
            opt_tensors, opt_meta = _optimizer_tensors(name, opt)
            tensors.update(opt_tensors)
            meta["optim"][name] = opt_meta
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        atomic_save(tensors, self.checkpoint_path, metadata={"trainer": json.dumps(meta)})

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by ``save_checkpoint``."""
        path = Path(path)
        try:
            tensors = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = json.loads(f.metadata()["trainer"])
        except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"checkpoint {path} is unreadable or not a trainer checkpoint ({err})") from err
        model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.method.load_state_dict(model)
            for name, opt in self.optimizers.items():
                opt.load_state_dict(_optimizer_state(name, tensors, meta["optim"][name]))
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"checkpoint {path} does not match this method ({str(err).splitlines()[0]})") from err
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step, self.train_seconds, self.history = meta["step"], meta["train_seconds"], meta["history"]

    def _evaluate(self) -> None:
        if self.eval_fn is None:
            return
        self.method.eval()
        self.history.append({"step": self.step, "eval": self.eval_fn(self.step)})
        self.method.train()

    def fit(self) -> list[dict]:
        """Run (or resume) training; returns the history of logged losses and evaluations."""
        if self.resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
        self.method.train()
        bar = tqdm(total=self.steps, initial=self.step, desc=type(self.method).__name__, disable=not self.progress)
        while self.step < self.steps:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in self.batches(self.step).items()}
            tic = time.perf_counter()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                self.method.training_step(batch, self._update)
            self.train_seconds += time.perf_counter() - tic
            self.step += 1
            bar.update(1)
            if self.step % self.log_every == 0 or self.step == self.steps:
                self.history.append({"step": self.step, "losses": dict(self._terms)})
                bar.set_postfix({k: f"{v:.3g}" for k, v in self._terms.items()}, refresh=False)
            if self.eval_every and self.step % self.eval_every == 0 and self.step < self.steps:
                self._evaluate()
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        if not self.history or "eval" not in self.history[-1] or self.history[-1]["step"] != self.step:
            self._evaluate()
        self.save_checkpoint()
        self.method.eval()
        return self.history

    def loss_curve(self) -> dict[str, list[tuple[int, float]]]:
        """``{term: [(step, value), ...]}`` from the history, for plotting."""
        curves: dict[str, list[tuple[int, float]]] = {}
        for row in self.history:
            for term, value in row.get("losses", {}).items():
                if math.isfinite(value):
                    curves.setdefault(term, []).append((row["step"], value))
        return curves
