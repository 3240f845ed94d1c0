"""Data-parallel training across processes (one per GPU, or CPU processes with gloo) under ``torchrun``.

Why not ``torch.nn.parallel.DistributedDataParallel``: a ``Method`` calls its sub-networks directly
inside ``training_step`` and hands each loss to ``update(optimiser_name, terms)``, which runs
``zero_grad / backward / step`` for one optimiser (a GAN step updates the critic, then the generator
through the updated critic). DDP's hooks assume one ``forward`` of the wrapped module per
``backward``; here the Trainer does the same job at the one place where gradients are complete:

- at start, every parameter and buffer is broadcast from rank 0 (``broadcast_module``);
- every rank takes its own contiguous slice of the global batch (``shard_batch``); the batches are a
  pure function of the step (``batches(step)``), so all ranks draw the same global batch and no
  ``DistributedSampler`` or per-rank data seeding is needed;
- after ``backward`` and before ``optimizer.step()`` the gradients of that optimiser's parameters are
  averaged over the ranks, one flattened bucket per call (``average_gradients``);
- buffers (batch-norm running statistics, spectral-norm vectors) are re-broadcast from rank 0 after
  each step, DDP's ``broadcast_buffers`` convention;
- only rank 0 writes checkpoints, metrics and progress bars (``is_rank0``).

When is the result equal to one process on the same global batch? When the mean of the ranks'
gradients is the gradient of the global loss: every loss term is a mean over samples (or over
pixels, with the same number of pixels on every rank) and no layer mixes samples. Batch norm in
training mode normalises with per-rank statistics, so its results differ from one process (use
GroupNorm, InstanceNorm or none for equality). Region-weighted losses such as ``hole_l1``
(``sum over the batch / hole pixels in the batch``) weight samples by their share of the batch's
hole pixels, so they match one process only when every rank's slice has as many hole pixels.

Launch (one node, N processes): ``torchrun --standalone --nproc_per_node N scripts/train_ddp.py``.
``torchrun --nproc_per_node N -m inpaintlib run NOTEBOOK`` cannot work: torchrun would start N
runners; each has papermill start its own Jupyter kernel and execute the whole notebook there
(every evaluation, figure and ``save_metrics`` N times), the notebooks never join a process group,
and the N runners race to rename their results into the same run folder. Distributed training
therefore lives in scripts (``scripts/train_ddp.py``); notebooks run in one process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: its global ``rank``, the ``world_size``, its ``local_rank`` and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str


def init_distributed(backend: str | None = None, timeout_minutes: float = 30.0) -> DistributedContext:
    """Join the process group described by torchrun's environment variables.

    ``backend``: ``"nccl"`` (default when CUDA is available) or ``"gloo"`` (CPU). With NCCL the
    process uses GPU ``LOCAL_RANK``. ``timeout_minutes`` bounds every collective, so it must exceed
    the longest rank-0-only pause (evaluation, checkpoint writing).
    """
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(
            f"environment variable(s) {', '.join(missing)} not set: start this script with "
            "torchrun --standalone --nproc_per_node N ... (or set them yourself)"
        )
    rank, world_size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"unknown backend {backend!r}; expected 'nccl' or 'gloo'")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ValueError("backend 'nccl' needs CUDA; use backend='gloo' on CPU")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend, rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=timeout_minutes)
        )
    return DistributedContext(rank, world_size, local_rank, device, backend)


def is_distributed() -> bool:
    """A process group is initialised (with any number of processes)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank; 0 outside a process group."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes; 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


def is_rank0() -> bool:
    """True in the process that writes files (rank 0), and in any single-process run."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (no-op outside one)."""
    if is_distributed():
        dist.destroy_process_group()


def shard_batch(batch: dict[str, torch.Tensor], rank: int, world_size: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s contiguous slice ``[rank * B/W, (rank + 1) * B/W)`` of every ``(B, ...)`` tensor.

    The global batch size ``B`` must be divisible by ``world_size`` so that every rank's mean loss
    has the same weight in the averaged gradient.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    sizes = {name: int(value.shape[0]) for name, value in batch.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"batch tensors disagree on the batch size: {sizes}")
    (size,) = set(sizes.values())
    if size % world_size:
        raise ValueError(f"global batch size {size} is not divisible by the world size {world_size}")
    per_rank = size // world_size
    return {name: value[rank * per_rank : (rank + 1) * per_rank] for name, value in batch.items()}


def broadcast_module(module: nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """Copy rank ``src``'s parameters and buffers (or only buffers) into every rank, in place.

    One broadcast per dtype: the tensors are flattened into a bucket and copied back.
    """
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    tensors += list(module.buffers())
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for group in by_dtype.values():
        bucket = torch.cat([t.reshape(-1) for t in group])  # (sum of numel,)
        dist.broadcast(bucket, src)
        _unflatten_into(bucket, group)


def _unflatten_into(bucket: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    """Copy consecutive pieces of a flat ``bucket`` back into ``tensors`` (any memory format)."""
    offset = 0
    for tensor in tensors:
        tensor.copy_(bucket[offset : offset + tensor.numel()].view(tensor.shape))
        offset += tensor.numel()


def average_gradients(parameters: list[nn.Parameter]) -> None:
    """``grad <- (1/W) * sum over ranks of grad`` for every parameter that has one, in one all-reduce.

    The gradients are copied into one flat bucket (their total size), reduced, and copied back.
    Ranks run the same code on same-shaped data, so they agree on which parameters have gradients.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    bucket = torch.cat([g.reshape(-1) for g in grads])  # (sum of numel,), the grads' promoted dtype
    dist.all_reduce(bucket, op=dist.ReduceOp.SUM)
    bucket /= dist.get_world_size()
    _unflatten_into(bucket, grads)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on at least one rank (all ranks must call it)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats with the same keys on every rank (all ranks must call it)."""
    names = sorted(values)
    stacked = torch.tensor([values[name] for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    return {name: float(v) / dist.get_world_size() for name, v in zip(names, stacked.tolist())}


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
