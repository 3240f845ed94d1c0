"""One training loop for every model in the book.

A model plugs in as a ``Method``: its networks, its optimisers, what one training step does, and
how it inpaints. The ``Trainer`` owns everything else: seeding, the device, tqdm progress, periodic
evaluation, atomic safetensors checkpoints with exact resume, and stopping on a non-finite loss
with the step and the term named.

Exact resume works because batches are a pure function of the step (``batches(step)``), and the
checkpoint holds the weights, the optimiser states and the torch random state.

A ``recipe`` (``inpaintlib.recipe``) sets how the method is optimised: Adam betas for every
optimiser, a learning-rate schedule over the run, and an exponential moving average (EMA) of the
weights, which is what periodic evaluation scores and what the method holds after ``fit``.

Scale options, all off by default: ``amp`` (bf16 autocast, or fp16 with a gradient scaler),
``channels_last`` memory format, ``compile`` (``torch.compile`` of each sub-network in place), and
``distributed`` data parallelism across the ranks of a process group (see ``inpaintlib.distributed``
for how it works and when it equals one process).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
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

from inpaintlib import distributed as dist_utils
from inpaintlib.recipe import Recipe, get_recipe

Batch = dict[str, torch.Tensor]
CHECKPOINT_NAME = "latest.safetensors"
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


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
    at the end; if it already holds one, training resumes from it (``resume=True``), saying so in one
    line on stderr; a checkpoint from past ``steps`` (another, longer run's) is refused.
    ``eval_fn(step) -> dict`` runs every ``eval_every`` steps and at the end; its results go to the history.
    ``amp``: autocast to ``amp_dtype`` (``"bfloat16"``, or ``"float16"`` with a ``GradScaler``).
    ``channels_last``: 4-D weights and batch tensors in NHWC memory order (faster convs on GPUs).
    ``compile``: ``torch.compile`` sub-networks in place (state-dict keys unchanged): ``True`` every direct
    child of the method, or their attribute names (e.g. ``("generator",)``). A compiled critic with
    ``spectral_norm`` fails in backward (torch 2.13: every call updates the vector ``u`` in place, and
    the compiled backward of the previous call, real before fake, still needs the old one); compile
    only the generator of such methods.
    ``distributed``: data parallel over an initialised process group (``inpaintlib.distributed``):
    each rank trains on its slice of ``batches(step)``, gradients are averaged, rank 0 writes and evaluates.
    ``recipe``: betas, learning-rate schedule and EMA (a ``Recipe`` or its name, ``inpaintlib.recipe``); ``None`` keeps each
    optimiser as the method built it, at a constant learning rate. With an EMA, evaluations score the
    averaged weights, checkpoints hold both, and after ``fit`` the method holds the averaged weights
    (calling ``fit`` again with more steps continues from the raw ones).
    ``images_seen`` counts the training images of every step (the budget the book compares at).
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
    amp_dtype: str = "bfloat16"
    channels_last: bool = False
    compile: bool | tuple[str, ...] = False
    distributed: bool = False
    recipe: Recipe | str | None = None

    def __post_init__(self) -> None:
        if self.recipe is not None:
            self.recipe = get_recipe(self.recipe)
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {self.amp_dtype!r}")
        if self.distributed and not dist_utils.is_distributed():
            raise ValueError(
                "distributed=True needs an initialised process group: call inpaintlib.distributed.init_distributed() "
                "in a process started by torchrun"
            )
        # Without distributed=True every process trains alone and writes, even inside a process group.
        self.rank, self.world_size = 0, 1
        if self.distributed:
            self.rank, self.world_size = dist_utils.get_rank(), dist_utils.get_world_size()
        self.device = resolve_device(self.device)
        self.method.to(self.device)
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        if self.distributed:
            dist_utils.broadcast_module(self.method)  # every rank starts from rank 0's weights
        self.optimizers = self.method.configure_optimizers()
        if self.compile:
            names = [name for name, _ in self.method.named_children()] if self.compile is True else list(self.compile)
            for name in names:
                sub_network = getattr(self.method, name, None)
                if not isinstance(sub_network, nn.Module):
                    raise ValueError(
                        f"compile names {name!r}, which is not a sub-network of {type(self.method).__name__}"
                    )
                sub_network.compile()
        if self.recipe is not None:
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group.setdefault("initial_lr", group["lr"] if self.recipe.lr is None else self.recipe.lr)
                    if self.recipe.betas is not None:
                        group["betas"] = tuple(self.recipe.betas)
        self.ema = None
        if self.recipe is not None and self.recipe.ema_decay > 0:
            self.ema = {k: v.detach().clone() for k, v in self.method.state_dict().items() if v.is_floating_point()}
        self._raw_weights: dict[str, torch.Tensor] | None = None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == "float16")
        self.step = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        self._terms: dict[str, float] = {}
        self._last_eval_step = -1

    @property
    def checkpoint_path(self) -> Path | None:
        return Path(self.checkpoint_dir) / CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    def _update(self, name: str, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        if name not in self.optimizers:
            raise KeyError(f"unknown optimiser {name!r}; the method has {sorted(self.optimizers)}")
        bad = next(((term, value) for term, value in terms.items() if not torch.isfinite(value).all()), None)
        # Every rank must learn of a non-finite loss anywhere, or the others would wait in the all-reduce.
        if self.distributed and dist_utils.any_rank(bad is not None, self.device) and bad is None:
            raise NonFiniteLossError(f"step {self.step}: a loss term of '{name}' is not finite on another rank")
        if bad is not None:
            term, value = bad
            raise NonFiniteLossError(
                f"step {self.step}: loss term '{name}/{term}' is {value.detach().float().flatten()[0].item()}"
            )
        total = sum(terms.values())
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.distributed:
            dist_utils.average_gradients([p for group in opt.param_groups for p in group["params"]])
        self.scaler.step(opt)
        self._terms.update({f"{name}/{t}": float(v.detach()) for t, v in terms.items()})
        return total

    def _rng_states(self) -> dict[str, torch.Tensor]:
        states = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def save_checkpoint(self) -> None:
        """Weights, optimiser states and the torch random state at the current step.

        Distributed: every rank must call it; rank 0 writes (its weights, every rank's random state
        as ``rng.torch`` for rank 0 and ``rng.torch.rank<r>`` for the others), then all ranks wait.
        """
        if self.checkpoint_path is None:
            return
        rank_states = dist_utils.gather_objects(self._rng_states()) if self.distributed else [self._rng_states()]
        if self.rank == 0:
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            tensors = {f"model.{k}": v for k, v in self.method.state_dict().items()}
            if self.ema is not None:
                tensors.update({f"ema.{k}": v for k, v in self.ema.items()})
            meta: dict = {"step": self.step, "images_seen": self.images_seen, "train_seconds": self.train_seconds,
                          "history": self.history, "optim": {}}
            for name, opt in self.optimizers.items():
                opt_tensors, opt_meta = _optimizer_tensors(name, opt)
                tensors.update(opt_tensors)
                meta["optim"][name] = opt_meta
            if self.scaler.is_enabled():
                meta["grad_scaler"] = self.scaler.state_dict()
            for rank, states in enumerate(rank_states):
                suffix = "" if rank == 0 else f".rank{rank}"
                tensors.update({f"rng.{kind}{suffix}": state for kind, state in states.items()})
            atomic_save(tensors, self.checkpoint_path, metadata={"trainer": json.dumps(meta)})
        if self.distributed:
            dist_utils.barrier()  # no rank reads the checkpoint before it is complete

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
        if self.ema is not None:
            ema = {k[len("ema.") :]: v for k, v in tensors.items() if k.startswith("ema.")}
            if set(ema) != set(self.ema):
                raise CheckpointError(f"checkpoint {path} holds no EMA weights for this method (written with another recipe?)")
            self.ema = {k: ema[k].to(self.ema[k].device, self.ema[k].dtype) for k in self.ema}
        suffix = f".rank{self.rank}" if f"rng.torch.rank{self.rank}" in tensors else ""
        torch.set_rng_state(tensors[f"rng.torch{suffix}"])
        if f"rng.cuda{suffix}" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors[f"rng.cuda{suffix}"], self.device)
        if "grad_scaler" in meta and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["grad_scaler"])
        self.step, self.train_seconds, self.history = meta["step"], meta["train_seconds"], meta["history"]
        self.images_seen = meta.get("images_seen", 0)
        self._last_eval_step = max((row["step"] for row in self.history if "eval" in row), default=-1)

    def _evaluate(self) -> None:
        """Run ``eval_fn`` (on rank 0 only when distributed; the other ranks wait)."""
        if self.eval_fn is None:
            return
        self._last_eval_step = self.step
        if self.rank == 0:
            raw = self._load_ema()
            self.method.eval()
            self.history.append({"step": self.step, "images_seen": self.images_seen, "eval": self.eval_fn(self.step)})
            self.method.train()
            if raw is not None:
                self.method.load_state_dict(raw, strict=False)
        if self.distributed:
            dist_utils.barrier()

    def _load_ema(self) -> dict[str, torch.Tensor] | None:
        """Put the EMA weights into the method; returns the raw ones they replaced (None without an EMA)."""
        if self.ema is None:
            return None
        raw = {k: v.detach().clone() for k, v in self.method.state_dict().items() if k in self.ema}
        self.method.load_state_dict(self.ema, strict=False)
        return raw

    @torch.no_grad()
    def _update_ema(self) -> None:
        """``ema <- d * ema + (1 - d) * weights`` with the recipe's ``d`` for the step just taken."""
        state = self.method.state_dict()
        keys = list(self.ema)
        torch._foreach_lerp_([self.ema[k] for k in keys], [state[k].detach() for k in keys], 1.0 - self.recipe.ema_factor(self.step))

    def _set_learning_rates(self) -> None:
        """Every parameter group at its base rate times the recipe's factor for this step."""
        factor = self.recipe.lr_factor(self.step, self.steps)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def _batch(self) -> Batch:
        """This step's batch (this rank's slice when distributed) on the device, in the memory format."""
        batch = self.batches(self.step)
        self._global_batch = len(next(iter(batch.values())))  # images this step across all ranks
        if self.distributed:
            batch = dist_utils.shard_batch(batch, self.rank, self.world_size)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}
        return batch

    def fit(self) -> list[dict]:
        """Run (or resume) training; returns the history of logged losses and evaluations."""
        if self._raw_weights is not None:  # a second fit continues from the raw weights, not the average
            self.method.load_state_dict(self._raw_weights, strict=False)
            self._raw_weights = None
        if self.resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
            if self.step > self.steps:  # a longer run's checkpoint: its model is not this run's
                raise CheckpointError(
                    f"checkpoint {self.checkpoint_path} is at step {self.step}, past this run's {self.steps} steps: it "
                    f"belongs to another run; give this run its own checkpoint_dir (or delete that checkpoint)")
            if self.rank == 0:
                shown = Path(self.checkpoint_path.parent.name, CHECKPOINT_NAME).as_posix()  # no temporary run path in the book
                print(f"{type(self.method).__name__}: resuming from step {self.step} of {self.steps} (checkpoint {shown})",
                      file=sys.stderr)
        self.method.train()
        show = self.progress and self.rank == 0
        bar = tqdm(total=self.steps, initial=self.step, desc=type(self.method).__name__, disable=not show)
        while self.step < self.steps:
            batch = self._batch()
            tic = time.perf_counter()
            if self.recipe is not None:
                self._set_learning_rates()
            with torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp_dtype], enabled=self.amp):
                self.method.training_step(batch, self._update)
            self.scaler.update()
            if self.distributed:
                dist_utils.broadcast_module(self.method, buffers_only=True)  # DDP's broadcast_buffers
            if self.ema is not None:
                self._update_ema()
            self.train_seconds += time.perf_counter() - tic
            self.images_seen += self._global_batch
            self.step += 1
            bar.update(1)
            if self.step % self.log_every == 0 or self.step == self.steps:
                if self.distributed:  # the logged losses are the mean over the ranks' slices
                    self._terms = dist_utils.mean_over_ranks(self._terms, self.device)
                self.history.append({"step": self.step, "losses": dict(self._terms)})
                bar.set_postfix({k: f"{v:.3g}" for k, v in self._terms.items()}, refresh=False)
            if self.eval_every and self.step % self.eval_every == 0 and self.step < self.steps:
                self._evaluate()
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        if self._last_eval_step != self.step:
            self._evaluate()
        self.save_checkpoint()
        self._raw_weights = self._load_ema()
        self.method.eval()
        return self.history

    def loss_curve(self) -> dict[str, list[tuple[int, float]]]:
        """``{term: [(step, value), ...]}`` from the history, for plotting."""
        return loss_curve(self.history)


def loss_curve(history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{term: [(step, value), ...]}`` from a ``Trainer`` history (rows with ``"losses"``), finite values only."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        for term, value in row.get("losses", {}).items():
            if math.isfinite(value):
                curves.setdefault(term, []).append((row["step"], value))
    return curves
