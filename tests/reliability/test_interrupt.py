"""A training run killed with SIGKILL at an arbitrary step and resumed ends bit-identical (CPU)."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import torch
from safetensors.torch import load_file

from inpaintlib.train import CHECKPOINT_NAME

STEPS = 12
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    from inpaintlib.data.batches import InpaintingBatches
    from inpaintlib.models.unet import UNetMethod
    from inpaintlib.train import Trainer, save_weights, seed_everything

    ckpt_dir, out = sys.argv[1], sys.argv[2]
    seed_everything(0)
    method = UNetMethod((8, 16, 32), adv_weight=0.1)
    batches = InpaintingBatches.scenes(32, 16, 4, seed=0)
    def report(step):
        print(f"step {step}", flush=True)
        return {}
    Trainer(method, batches, %d, checkpoint_dir=ckpt_dir, checkpoint_every=1, eval_fn=report,
            eval_every=1, progress=False).fit()
    save_weights(method, out)
    """
    % STEPS
)


def _python(script, *args, **popen):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, text=True, **popen)


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    kill_at = int(np.random.default_rng(13).integers(3, STEPS - 3))

    straight = _python(script, tmp_path / "a", tmp_path / "a.safetensors")
    victim = _python(script, tmp_path / "b", tmp_path / "b.safetensors", stdout=subprocess.PIPE)
    try:
        for line in victim.stdout:
            if line.strip() == f"step {kill_at}":
                victim.send_signal(signal.SIGKILL)
                break
        victim.wait(timeout=60)
        assert straight.wait(timeout=600) == 0
    finally:
        for proc in (straight, victim):
            if proc.poll() is None:
                proc.kill()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "b.safetensors").exists()
    assert (tmp_path / "b" / CHECKPOINT_NAME).is_file(), "the latest good checkpoint must be there"

    resumed = _python(script, tmp_path / "b", tmp_path / "b.safetensors", stdout=subprocess.PIPE)
    try:
        out, _ = resumed.communicate(timeout=600)
    finally:
        resumed.kill()
    assert resumed.returncode == 0
    first_step = int(out.split()[1])
    assert kill_at - 1 <= first_step <= kill_at + 1, "resume starts right after the last checkpoint"

    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
