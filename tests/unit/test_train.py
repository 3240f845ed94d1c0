import math

import pytest
import torch
from torch import nn

from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.models.unet import UNetMethod
from inpaintlib.train import (
    CHECKPOINT_NAME,
    CheckpointError,
    Method,
    NonFiniteLossError,
    Trainer,
    load_weights,
    resolve_device,
    save_weights,
    seed_everything,
)


@pytest.fixture(scope="module")
def batches():
    return InpaintingBatches.scenes(32, 24, 4, seed=3)


def _method(adv=0.0):
    seed_everything(0)
    return UNetMethod((8, 16, 32), adv_weight=adv)


def _weights(method):
    return {k: v.clone() for k, v in method.state_dict().items()}


def test_batches_are_a_function_of_the_step(batches):
    a, b = batches(5), batches(5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["image"], batches(6)["image"])
    assert a["image"].shape == (4, 3, 32, 32) and a["mask"].shape == (4, 1, 32, 32)


@pytest.mark.parametrize("adv", [0.0, 0.1])
def test_resume_is_bit_identical(tmp_path, batches, adv):
    straight = _method(adv)
    Trainer(straight, batches, 6, progress=False).fit()

    interrupted = _method(adv)
    Trainer(interrupted, batches, 3, checkpoint_dir=tmp_path, progress=False).fit()
    resumed = _method(adv)  # fresh process state: new weights, then the checkpoint is loaded
    torch.manual_seed(1234)  # a different RNG state must not matter: the checkpoint restores it
    trainer = Trainer(resumed, batches, 6, checkpoint_dir=tmp_path, progress=False)
    trainer.fit()
    assert trainer.step == 6
    for (k, a), b in zip(_weights(straight).items(), _weights(resumed).values()):
        assert torch.equal(a, b), k


def test_checkpoint_is_written_atomically(tmp_path, batches):
    Trainer(_method(), batches, 2, checkpoint_dir=tmp_path, checkpoint_every=1, progress=False).fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


class _Exploding(Method):
    def __init__(self, at_step: int):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls, self.at_step = 0, at_step

    def configure_optimizers(self):
        return {"g": torch.optim.SGD(self.parameters(), lr=0.1)}

    def training_step(self, batch, update):
        self.calls += 1
        bad = torch.tensor(math.nan) if self.calls > self.at_step else torch.tensor(0.0)
        update("g", {"l1_hole": (self.w - 2).abs().sum(), "style": bad + 0.5 * self.w.sum()})


def test_nan_stops_with_step_and_term(batches):
    method = _Exploding(at_step=3)
    with pytest.raises(NonFiniteLossError, match=r"step 3: loss term 'g/style' is nan"):
        Trainer(method, batches, 10, progress=False).fit()
    assert float(method.w.detach()) != 1.0  # earlier steps did update


def test_corrupt_and_mismatched_checkpoints(tmp_path, batches):
    bad = tmp_path / CHECKPOINT_NAME
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        Trainer(_method(), batches, 2, checkpoint_dir=tmp_path, progress=False).fit()

    other = tmp_path / "other"
    Trainer(UNetMethod((8, 16)), batches, 1, checkpoint_dir=other, progress=False).fit()
    with pytest.raises(CheckpointError, match="does not match"):
        Trainer(_method(), batches, 2, checkpoint_dir=other, progress=False).fit()


def test_weights_round_trip_and_errors(tmp_path):
    a, b = _method(), UNetMethod((8, 16, 32))
    save_weights(a.generator, tmp_path / "g.safetensors")
    load_weights(b.generator, tmp_path / "g.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.generator.state_dict().values(), b.generator.state_dict().values()))
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(b.generator, tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="does not match"):
        load_weights(UNetMethod((8, 16)).generator, tmp_path / "g.safetensors")


def test_eval_runs_periodically_and_at_the_end(batches):
    seen = []
    Trainer(_method(), batches, 5, eval_fn=lambda s: seen.append(s) or {"x": 1.0}, eval_every=2, progress=False).fit()
    assert seen == [2, 4, 5]


def test_device_auto_and_bad_device():
    assert resolve_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
