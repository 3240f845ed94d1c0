"""SACA reconstruction: shapes, known features pass through, the transfer step against a loop reference."""

import numpy as np
import pytest
import torch

from inpaintlib.models.saca import SACA, SACAGenerator, SACAMethod


def _maps(seed=0, batch=2, deep_channels=8, shallow_channels=4, size=6):
    generator = torch.Generator().manual_seed(seed)
    deep = torch.randn(batch, deep_channels, size, size, generator=generator)
    shallow = torch.randn(batch, shallow_channels, 2 * size, 2 * size, generator=generator)
    mask_deep = torch.zeros(batch, 1, size, size)
    mask_deep[0, :, 1:4, 2:5] = 1.0
    mask_deep[1, :, 3:6, 0:3] = 1.0
    mask_shallow = torch.nn.functional.interpolate(mask_deep, scale_factor=2.0)
    probs = torch.randn(batch, 3, size, size, generator=generator).mul(3).softmax(1)
    return deep, shallow, mask_deep, mask_shallow, probs


def _loop_transfer_4x4(attention: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sum_j a_ij (4x4 patch of values at (2 j_y - 1, 2 j_x - 1)) overlap-added at (2 i_y - 1, 2 i_x - 1), / 4."""
    channels, height, width = values.shape
    small_w = width // 2
    padded = np.zeros((channels, height + 2, width + 2))
    padded[:, 1:-1, 1:-1] = values
    canvas = np.zeros((channels, height + 2, width + 2))
    for q in range(attention.shape[0]):
        qy, qx = divmod(q, small_w)
        for p in range(attention.shape[1]):
            py, px = divmod(p, small_w)
            canvas[:, 2 * qy : 2 * qy + 4, 2 * qx : 2 * qx + 4] += attention[q, p] * padded[:, 2 * py : 2 * py + 4, 2 * px : 2 * px + 4]
    return canvas[:, 1:-1, 1:-1] / 4.0


def test_saca_shapes_and_known_features_pass_through():
    deep, shallow, mask_deep, mask_shallow, probs = _maps()
    for levels in ("deep", "both"):
        out = SACA(8, 4, levels=levels)(deep, shallow, mask_deep, mask_shallow, probs)
        assert out.deep.shape == deep.shape and out.shallow.shape == shallow.shape
        assert out.attention.shape == (2, 36, 36) and out.fallback_count.shape == (2,)
        known_deep, known_shallow = (mask_deep == 0).expand_as(deep), (mask_shallow == 0).expand_as(shallow)
        assert torch.equal(out.deep[known_deep], deep[known_deep])
        assert torch.equal(out.shallow[known_shallow], shallow[known_shallow])
        assert not torch.allclose(out.deep[~known_deep], deep[~known_deep])
        if levels == "deep":
            assert torch.equal(out.shallow, shallow)
        else:
            assert not torch.allclose(out.shallow[~known_shallow], shallow[~known_shallow])


def test_shallow_transfer_matches_loop_reference():
    deep, shallow, mask_deep, mask_shallow, probs = _maps(seed=1)
    saca = SACA(8, 4, levels="both", gate="soft").double()
    out = saca(deep.double(), shallow.double(), mask_deep.double(), mask_shallow.double(), probs.double())
    attention = out.attention.detach().numpy()
    for n in range(2):
        paste = _loop_transfer_4x4(attention[n], shallow[n].double().numpy())
        m = mask_shallow[n].double().numpy()
        filled = torch.from_numpy(m * paste + (1 - m) * shallow[n].double().numpy())[None]
        expected = mask_shallow[n : n + 1].double() * saca.fuse_shallow(filled) + (1 - mask_shallow[n : n + 1].double()) * shallow[n : n + 1].double()
        torch.testing.assert_close(out.shallow[n : n + 1], expected, rtol=0, atol=1e-5)


def test_gate_changes_attention_and_ungated_ignores_probs():
    deep, shallow, mask_deep, mask_shallow, probs = _maps(seed=2)
    gated = SACA(8, 4, gate="hard")(deep, shallow, mask_deep, mask_shallow, probs)
    ungated = SACA(8, 4, gate="none")(deep, shallow, mask_deep, mask_shallow, probs)
    same = SACA(8, 4, gate="none")(deep, shallow, mask_deep, mask_shallow, None)
    assert not torch.allclose(gated.attention, ungated.attention)
    torch.testing.assert_close(ungated.attention, same.attention)


def test_generator_and_method_shapes_and_one_step(plain_steps):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:10, 3:12] = 1.0
    out = SACAGenerator(cnum=4, num_classes=7)(image * (1 - mask), mask)
    assert out.image.shape == (2, 3, 16, 16) and out.seg_logits.shape == (2, 7, 4, 4)
    assert out.attention.shape == (2, 16, 16) and 0 <= float(out.image.min().detach()) and float(out.image.max().detach()) <= 1
    method = SACAMethod(cnum=4, levels="deep", gate="soft", adv_weight=0.1)
    labels = torch.randint(0, 7, (2, 16, 16))
    logged = plain_steps(method)({"image": image, "mask": mask, "labels": labels})
    assert set(logged) == {"d/hinge", "g/l1_hole", "g/l1_valid", "g/seg_ce", "g/adv"}
    assert method.inpaint(image, mask).shape == image.shape


def test_bad_arguments_raise_value_errors():
    deep, shallow, mask_deep, mask_shallow, probs = _maps()
    with pytest.raises(ValueError, match="levels must be one of"):
        SACA(8, 4, levels="all")
    with pytest.raises(ValueError, match="gate must be one of"):
        SACA(8, 4, gate="sometimes")
    with pytest.raises(ValueError, match="twice the deep map"):
        SACA(8, 4)(deep, shallow[..., :10, :10], mask_deep, mask_shallow, probs)
    with pytest.raises(ValueError, match="divisible by 4"):
        SACAGenerator(cnum=4)(torch.rand(1, 3, 18, 18), torch.zeros(1, 1, 18, 18))
