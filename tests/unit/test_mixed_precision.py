"""bf16 autocast, as the `gpu` presets train (``amp: true``): every inpainting method trains a step under
the Trainer's autocast with finite losses, and still inpaints in float32 afterwards.

CPUs without bf16 units emulate it (slowly), so this runs one step at 64 px with each method's defaults
(SPL with fewer dense blocks). CPU and CUDA autocast cast slightly different op lists, so this catches dtype
mismatches in our own code (a float32 buffer meeting a bf16 activation), not every CUDA-only case; the
`gpu` preset on a GPU is checked by ``scripts/check_gpu_preset.py --device cuda``."""

import math

import pytest
import torch

from inpaintlib.data.batches import InpaintingBatches
from inpaintlib.models.coherence import CoherenceMethod
from inpaintlib.models.csa import CSAMethod
from inpaintlib.models.deepfill import DeepFillMethod
from inpaintlib.models.lbp import LBPMethod
from inpaintlib.models.saca import SACAMethod
from inpaintlib.models.sge import SGEMethod
from inpaintlib.models.spl import SceneTeacher, SPLMethod
from inpaintlib.models.unet import UNetMethod
from inpaintlib.train import Trainer, seed_everything

SIZE = 64
METHODS = {
    "unet": lambda: UNetMethod(),
    "deepfill": lambda: DeepFillMethod(SIZE),
    "csa": lambda: CSAMethod(),
    "sge": lambda: SGEMethod(),
    "coherence": lambda: CoherenceMethod(),
    "saca": lambda: SACAMethod(),
    "spl": lambda: SPLMethod(SceneTeacher(), rdb_blocks=2, middle_blocks=2),
    "lbp": lambda: LBPMethod(),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_one_bf16_autocast_step_then_float32_inference(name):
    seed_everything(0)
    method = METHODS[name]()
    batches = InpaintingBatches.scenes(SIZE, 8, 2, seed=0)
    history = Trainer(method, batches, 1, progress=False, amp=True, amp_dtype="bfloat16").fit()
    losses = [value for row in history for value in row.get("losses", {}).values()]
    assert losses and all(math.isfinite(v) for v in losses)
    batch = batches(1)
    out = method.inpaint(batch["image"] * (1 - batch["mask"]), batch["mask"])
    assert out.dtype == torch.float32 and out.shape == batch["image"].shape
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
