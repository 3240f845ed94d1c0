"""Data-parallel training: 2 CPU processes with gloo against one process on the same global batch.

The multi-process test starts both ranks once (process start-up dominates its time) and checks, in
one run: rank 0's weights are broadcast, 2-rank training (with a resume from a rank-0 checkpoint)
equals single-process training up to float rounding, both ranks hold identical weights, only rank
0 writes files, the logged losses are the global-batch losses, and a NaN on one rank stops both.
"""

import math
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from inpaintlib import distributed as dist_utils
from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.models.unet import UNetMethod
from inpaintlib.train import CHECKPOINT_NAME, Method, NonFiniteLossError, Trainer, seed_everything

WORLD_SIZE = 2
STEPS, RESUME_AT = 4, 2


def _batches() -> InpaintingBatches:
    """Global batch of 4 at 32 px; one mask in the pool, so every sample (and rank) has as many hole pixels."""
    gen = torch.Generator().manual_seed(5)
    images = torch.rand(8, 3, 32, 32, generator=gen)
    masks = torch.zeros(1, 1, 32, 32)
    masks[..., 6:20, 4:14] = 1
    labels, present = torch.zeros(8, 32, 32, dtype=torch.long), torch.zeros(8, 7)
    return InpaintingBatches(images, labels, present, masks, batch_size=4, seed=1)


class _SGDUNet(UNetMethod):
    """The U-Net method with plain SGD, so that the weights are a linear function of the gradients.

    Adam divides by the running gradient magnitude, which turns rounding noise in a gradient that is
    zero in exact arithmetic (a conv bias right before a one-channel-per-group GroupNorm) into
    lr-sized steps of random sign; SGD keeps a 1e-9 gradient difference a 1e-9 weight difference.
    """

    def configure_optimizers(self):
        return {
            "g": torch.optim.SGD(self.generator.parameters(), lr=0.05),
            "d": torch.optim.SGD(self.discriminator.parameters(), lr=0.05),
        }


def _method() -> UNetMethod:
    """GroupNorm (no batch statistics) and a spectral-norm critic: two optimisers, per-sample-mean losses."""
    return _SGDUNet((8, 16, 32), norm="group", adv_weight=0.1)


class _NanOnRankOne(Method):
    """A loss that becomes NaN at the second step on rank 1 only."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls = 0

    def configure_optimizers(self):
        return {"g": torch.optim.SGD(self.parameters(), lr=0.1)}

    def training_step(self, batch, update):
        self.calls += 1
        bad = math.nan if dist_utils.get_rank() == 1 and self.calls == 2 else 0.0
        update("g", {"l1": (self.w - 2).abs().sum() + bad})


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    if sys.platform == "linux":
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback: no need for the host name to resolve
    torch.set_num_threads(1)
    import inpaintlib.train as train_module

    writes: list[str] = []
    real_save = train_module.atomic_save

    def recording_save(tensors, path, metadata=None):
        writes.append(Path(path).name)
        real_save(tensors, path, metadata)

    train_module.atomic_save = recording_save
    context = dist_utils.init_distributed("gloo")
    out = Path(out_dir)
    seed_everything(100 + rank)  # different initial weights per rank: the Trainer must broadcast rank 0's
    first = _method()
    initial = {k: v.clone() for k, v in first.state_dict().items()}
    options = {"checkpoint_dir": out / "ckpt", "log_every": 1, "progress": False, "distributed": True}
    Trainer(first, _batches(), RESUME_AT, **options).fit()
    seed_everything(200 + rank)
    resumed = _method()
    trainer = Trainer(resumed, _batches(), STEPS, **options)
    trainer.fit()

    try:
        Trainer(_NanOnRankOne(), _batches(), 3, progress=False, distributed=True).fit()
        nan_message = "no error"
    except NonFiniteLossError as err:
        nan_message = str(err)
    torch.save(
        {
            "rank": context.rank,
            "is_rank0": dist_utils.is_rank0(),
            "initial": initial,
            "final": resumed.state_dict(),
            "history": trainer.history,
            "writes": writes,
            "nan_message": nan_message,
        },
        out / f"rank{rank}.pt",
    )
    dist_utils.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(out_dir: Path, timeout_s: float = 240.0) -> list[dict]:
    args = (_free_port(), str(out_dir))
    context = mp.start_processes(_worker, args=args, nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD_SIZE} ranks did not finish within {timeout_s:.0f} s (a collective hangs?)")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one torch thread each (as in the ranks) avoids thread-pool waits on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return _run_ranks(tmp_path_factory.mktemp("ddp"))


@pytest.fixture(scope="module")
def single_process():
    seed_everything(100)  # rank 0's seed: its initial weights are the ones broadcast
    method = _method()
    trainer = Trainer(method, _batches(), STEPS, log_every=1, progress=False)
    trainer.fit()
    return method.state_dict(), trainer.history


def test_two_ranks_equal_one_process_on_the_same_global_batch(ranks, single_process):
    weights, _ = single_process
    first_conv = "generator.down.0.conv.weight"
    assert not torch.equal(ranks[0]["initial"][first_conv], ranks[1]["initial"][first_conv])  # the broadcast matters
    changed = max((weights[k].float() - ranks[0]["initial"][k].float()).abs().max().item() for k in weights)
    worst = max((weights[k].float() - ranks[0]["final"][k].float()).abs().max().item() for k in weights)
    assert changed > 1e-2  # training moved the weights by far more than the tolerance below
    assert worst < 1e-6, worst  # measured: 6e-8 (float32 sums in another order)
    for key in weights:  # the ranks hold the same weights (the same reduced gradients, the same updates)
        assert torch.equal(ranks[0]["final"][key], ranks[1]["final"][key]), key


def test_logged_losses_are_the_global_batch_losses(ranks, single_process):
    _, history = single_process
    expected = [row for row in history if "losses" in row]
    logged = [row for row in ranks[0]["history"] if "losses" in row]
    assert [r["step"] for r in logged] == [r["step"] for r in expected] == list(range(1, STEPS + 1))
    for ours, theirs in zip(logged, expected):
        assert ours["losses"].keys() == theirs["losses"].keys()
        for term, value in theirs["losses"].items():
            assert ours["losses"][term] == pytest.approx(value, rel=1e-5, abs=1e-6), (ours["step"], term)


def test_only_rank0_writes(ranks):
    assert ranks[0]["is_rank0"] and not ranks[1]["is_rank0"]
    assert ranks[0]["writes"] == [CHECKPOINT_NAME, CHECKPOINT_NAME]  # end of the first run, end of the resumed run
    assert ranks[1]["writes"] == []


def test_a_nan_on_one_rank_stops_every_rank(ranks):
    assert ranks[1]["nan_message"] == "step 1: loss term 'g/l1' is nan"
    assert ranks[0]["nan_message"] == "step 1: a loss term of 'g' is not finite on another rank"


def test_shard_batch_slices_and_errors():
    batch = {"image": torch.arange(6.0).view(6, 1), "labels": torch.arange(6).view(6, 1) * 10}
    parts = [dist_utils.shard_batch(batch, r, 3) for r in range(3)]
    assert [p["image"].flatten().tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert parts[2]["labels"].flatten().tolist() == [40, 50]
    with pytest.raises(ValueError, match="not divisible by the world size 4"):
        dist_utils.shard_batch(batch, 0, 4)
    with pytest.raises(ValueError, match="disagree on the batch size"):
        dist_utils.shard_batch({"image": torch.zeros(4, 1), "mask": torch.zeros(2, 1)}, 0, 2)
    with pytest.raises(ValueError, match="outside"):
        dist_utils.shard_batch(batch, 3, 3)


def test_single_process_defaults_and_clear_errors(monkeypatch):
    assert dist_utils.is_rank0() and dist_utils.get_world_size() == 1 and not dist_utils.is_distributed()
    dist_utils.barrier()  # a no-op without a process group
    for name in dist_utils.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set"):
        dist_utils.init_distributed()
    with pytest.raises(ValueError, match="needs an initialised process group"):
        Trainer(_method(), _batches(), 1, progress=False, distributed=True)


def test_channels_last_matches_the_default_memory_format():
    results = []
    for channels_last in (False, True):
        seed_everything(0)
        method = _SGDUNet((8, 16, 32), adv_weight=0.1)  # batch norm, the default U-Net
        Trainer(method, _batches(), 2, progress=False, channels_last=channels_last).fit()
        results.append(method.state_dict())
    conv = results[1]["generator.down.1.conv.weight"]
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    worst = max((results[0][k].float() - results[1][k].float()).abs().max().item() for k in results[0])
    assert worst < 1e-5, worst


def test_float16_amp_uses_a_grad_scaler_and_checkpoints_it(tmp_path):
    seed_everything(0)
    trainer = Trainer(_method(), _batches(), 2, checkpoint_dir=tmp_path, progress=False, amp=True, amp_dtype="float16")
    trainer.fit()
    resumed = Trainer(_method(), _batches(), 2, checkpoint_dir=tmp_path, progress=False, amp=True, amp_dtype="float16")
    assert trainer.scaler.is_enabled()
    assert resumed.scaler.state_dict() != trainer.scaler.state_dict()  # training moved the scale or its step count
    resumed.fit()  # loads the step-2 checkpoint and has nothing left to train
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()
    assert not Trainer(_method(), _batches(), 1, progress=False).scaler.is_enabled()
    with pytest.raises(ValueError, match="amp_dtype must be one of bfloat16, float16"):
        Trainer(_method(), _batches(), 1, progress=False, amp_dtype="float32")


def test_compile_names_must_be_sub_networks():
    # Compiling itself is not exercised here: torch.compile of even this small U-Net takes minutes on a busy 2-core CPU.
    with pytest.raises(ValueError, match="compile names 'critic', which is not a sub-network of _SGDUNet"):
        Trainer(_method(), _batches(), 1, progress=False, compile=("critic",))
