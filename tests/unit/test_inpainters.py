"""Each chapter's ``*Inpainter``: rebuilt from JSON kwargs and the saved generator weights, it gives the
chapter's inference output, so the comparison chapter can put every model in one grid."""

import json

import pytest
import torch
from torch import nn

from inpaintlib.compare import inpainter_spec
from inpaintlib.models.coherence import CoherenceInpainter, CoherenceMethod
from inpaintlib.models.csa import CSAGenerator, CSAInpainter
from inpaintlib.models.deepfill import DeepFillInpainter, DeepFillMethod
from inpaintlib.models.lbp import LBPInpainter, LBPMethod
from inpaintlib.models.saca import SACAInpainter, SACAMethod
from inpaintlib.train import load_weights, save_weights


def _inputs(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, size, size, generator=generator)
    mask = torch.zeros(2, 1, size, size)
    mask[0, :, 8:20, 6:22] = 1
    mask[1, :, 12:28, 10:30] = 1
    return image, mask


def _deepfill():
    kwargs = {"cnum": 4, "num_downsamples": 1}
    method = DeepFillMethod(32, **kwargs)
    return method.generator, method.inpaint, DeepFillInpainter, kwargs


def _csa():
    kwargs = {"rough_channels": [4, 8, 8], "refine_channels": [4, 16, 8], "csa_stride": 4}
    generator = CSAGenerator(**kwargs)
    return generator, lambda image, mask: generator(image, mask).refined.clamp(0, 1), CSAInpainter, kwargs


def _coherence():
    kwargs = {"cnum": 4}
    method = CoherenceMethod(**kwargs)
    return method.generator, method.inpaint, CoherenceInpainter, kwargs


def _saca():
    kwargs = {"cnum": 4, "levels": "both", "gate": "hard"}
    method = SACAMethod(**kwargs)
    return method.generator, method.inpaint, SACAInpainter, kwargs


def _lbp():
    kwargs = {"image_channels": [4, 8, 8, 8], "lbp_channels": [4, 4, 8, 8], "top_t": 2}
    method = LBPMethod(disc_channels=(4, 8), hed_losses=False, **kwargs)
    networks = nn.ModuleDict({"image_net": method.image_net, "lbp_net": method.lbp_net})
    return networks, method.inpaint, LBPInpainter, kwargs


@pytest.mark.parametrize("build", [_deepfill, _csa, _coherence, _saca, _lbp], ids=lambda f: f.__name__[1:])
def test_inpainter_rebuilt_from_spec_matches_the_chapter(build, tmp_path):
    torch.manual_seed(0)
    trained, chapter_inpaint, factory, kwargs = build()
    for p in trained.parameters():  # weights a fresh factory() cannot have by chance
        p.data.add_(0.01 * torch.randn_like(p))
    weights = tmp_path / "checkpoints" / "g.safetensors"
    weights.parent.mkdir()
    save_weights(trained, weights)
    spec = json.loads(json.dumps(inpainter_spec(factory, kwargs, weights, tmp_path)))
    rebuilt = factory(**spec["kwargs"]).eval()
    load_weights(rebuilt, tmp_path / spec["weights"])
    trained.eval()
    image, mask = _inputs()
    with torch.no_grad():
        expected = chapter_inpaint(image * (1 - mask), mask)
        actual = rebuilt(image * (1 - mask), mask)
    assert actual.shape == image.shape
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)
