"""Coherence priors: SWAP, the multi-scale joint network and the two coherence losses, against loop references."""

import math

import numpy as np
import pytest
import torch

from inpaintlib.losses_coherence import (
    coherence_pairs,
    nonlocal_affinity,
    nonlocal_coherence_loss,
    structure_coherence_d_losses,
    structure_coherence_g_losses,
)
from inpaintlib.models.coherence import SWAP, CoherenceGenerator, CoherenceMethod

# ----------------------------------------------------------------------------------------------
# Loop references
# ----------------------------------------------------------------------------------------------


def _loop_pairs(labels, mask):
    batch, height, width = labels.shape
    num = height * width
    pairs = np.zeros((batch, num, num), dtype=bool)
    for n in range(batch):
        for i in range(num):
            for j in range(num):
                yi, xi = divmod(i, width)
                yj, xj = divmod(j, width)
                pairs[n, i, j] = mask[n, 0, yi, xi] == 1 and mask[n, 0, yj, xj] == 0 and labels[n, yi, xi] == labels[n, yj, xj]
    return pairs


def _loop_cos(a, b):
    return float(np.dot(a, b) / (max(np.linalg.norm(a), 1e-8) * max(np.linalg.norm(b), 1e-8)))


def _loop_nonlocal(phi_fake, phi_real, labels, mask, mode, scale=10.0):
    batch, channels, height, width = phi_fake.shape
    pairs = _loop_pairs(labels, mask)
    values = []
    for n in range(batch):
        fake = phi_fake[n].reshape(channels, -1)
        real = phi_real[n].reshape(channels, -1)
        for i in range(height * width):
            allowed = [j for j in range(height * width) if pairs[n, i, j]]
            if not allowed:
                continue
            if mode == "affinity":
                rows = []
                for feats in (fake, real):
                    logits = np.array([scale * _loop_cos(feats[:, i], feats[:, j]) for j in allowed])
                    weights = np.exp(logits - logits.max())
                    rows.append(weights / weights.sum())
                values.append(np.abs(rows[0] - rows[1]).sum())
            else:
                values.append(1 - max(_loop_cos(fake[:, i], real[:, j]) for j in allowed))
    return float(np.mean(values))


def _case(seed=0, batch=2, channels=3, size=5, classes=3):
    generator = torch.Generator().manual_seed(seed)
    phi_fake = torch.randn(batch, channels, size, size, generator=generator, dtype=torch.float64)
    phi_real = torch.randn(batch, channels, size, size, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (batch, size, size), generator=generator)
    mask = torch.zeros(batch, 1, size, size, dtype=torch.float64)
    mask[0, :, 1:4, 1:3] = 1.0
    mask[1, :, 0:2, 2:5] = 1.0
    return phi_fake, phi_real, labels, mask


# ----------------------------------------------------------------------------------------------
# Non-local patch coherence
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["affinity", "nearest"])
def test_nonlocal_loss_matches_loop_reference(mode):
    phi_fake, phi_real, labels, mask = _case(seed=1)
    loss = nonlocal_coherence_loss(phi_fake, phi_real, labels, mask, mode=mode)
    expected = _loop_nonlocal(phi_fake.numpy(), phi_real.numpy(), labels.numpy(), mask.numpy(), mode)
    assert abs(float(loss) - expected) < 1e-6


def test_pairs_and_affinity_rows():
    _, phi_real, labels, mask = _case(seed=2)
    pairs = coherence_pairs(labels, mask)
    assert np.array_equal(pairs.numpy(), _loop_pairs(labels.numpy(), mask.numpy()))
    affinity = nonlocal_affinity(phi_real, pairs)
    rows = pairs.any(-1)
    torch.testing.assert_close(affinity.sum(-1)[rows], torch.ones(int(rows.sum()), dtype=torch.float64))
    assert float(affinity[~pairs].abs().sum()) == 0.0


def test_nonlocal_loss_is_zero_for_identical_features_and_has_gradients():
    phi_fake, phi_real, labels, mask = _case(seed=3)
    assert float(nonlocal_coherence_loss(phi_real, phi_real, labels, mask)) == 0.0
    per_class = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).to(torch.float64)  # constant per class
    assert abs(float(nonlocal_coherence_loss(2 * per_class, per_class, labels, mask, mode="nearest"))) < 1e-12
    assert float(nonlocal_coherence_loss(phi_real, phi_real, labels, mask, mode="nearest")) > 0.01
    fake = phi_fake.clone().requires_grad_()
    nonlocal_coherence_loss(fake, phi_real, labels, mask).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    fake.grad = None
    nonlocal_coherence_loss(fake, phi_real, labels, mask, mode="nearest").backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    nothing = torch.zeros_like(mask)
    assert float(nonlocal_coherence_loss(phi_fake, phi_real, labels, nothing)) == 0.0


def test_nonlocal_loss_bad_inputs():
    phi_fake, phi_real, labels, mask = _case()
    with pytest.raises(ValueError, match="mode must be one of"):
        nonlocal_coherence_loss(phi_fake, phi_real, labels, mask, mode="cosine")
    with pytest.raises(ValueError, match="same"):
        nonlocal_coherence_loss(phi_fake, phi_real[..., :4], labels, mask)
    with pytest.raises(ValueError, match="long tensor"):
        nonlocal_coherence_loss(phi_fake, phi_real, labels.float(), mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        nonlocal_coherence_loss(phi_fake, phi_real, labels, mask[..., :4])


# ----------------------------------------------------------------------------------------------
# Structure coherence
# ----------------------------------------------------------------------------------------------


def test_structure_losses_match_hand_computation():
    # critics that read one known channel: D_t returns channel 0 (the image's red), D_s channel 0 (seg class 0)
    d_t = lambda x: x[:, :1]  # noqa: E731
    d_s = lambda x: 2 * x[:, :1]  # noqa: E731
    image = torch.full((1, 3, 2, 2), 0.5)
    fake = torch.full((1, 3, 2, 2), -2.0)
    seg = torch.zeros(1, 2, 2, 2)
    seg[:, 0] = 1.0
    fake_seg = torch.full((1, 2, 2, 2), 0.25)
    d = structure_coherence_d_losses(d_t, d_s, image, fake, seg, fake_seg)
    # D_t: relu(1 - 0.5) + relu(1 + (-2)) = 0.5; D_s: relu(1 - 2) + relu(1 + 0.5) = 1.5
    assert math.isclose(float(d["d_t"]), 0.5) and math.isclose(float(d["d_s"]), 1.5)
    g = structure_coherence_g_losses(d_t, d_s, fake, seg, fake_seg)
    assert math.isclose(float(g["adv_t"]), 2.0) and math.isclose(float(g["adv_s"]), -0.5)


# ----------------------------------------------------------------------------------------------
# SWAP and the network
# ----------------------------------------------------------------------------------------------


def _swap_inputs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(2, 6, 4, 4, generator=generator)
    fine = torch.randn(2, 4, 8, 8, generator=generator)
    coarse_mask = torch.zeros(2, 1, 4, 4)
    coarse_mask[0, :, 1:3, 1:3] = 1.0
    coarse_mask[1, :, 0:2, 2:4] = 1.0
    fine_mask = torch.nn.functional.interpolate(coarse_mask, scale_factor=2.0)
    probs = torch.randn(2, 3, 4, 4, generator=generator).mul(3).softmax(1)
    return coarse, coarse_mask, probs, fine, fine_mask


def _loop_propagate(attention, values):
    """sum_j a_ij (4x4 patch of values, top-left (2 j - 1)) overlap-added at (2 i - 1), / 4, per pixel."""
    channels, height, width = values.shape
    out = np.zeros_like(values)
    small_w = width // 2
    for y in range(height):
        for x in range(width):
            for q in range(attention.shape[0]):
                qy, qx = divmod(q, small_w)
                dy, dx = y - (2 * qy - 1), x - (2 * qx - 1)
                if not (0 <= dy < 4 and 0 <= dx < 4):
                    continue
                for p in range(attention.shape[1]):
                    py, px = divmod(p, small_w)
                    sy, sx = 2 * py - 1 + dy, 2 * px - 1 + dx
                    if 0 <= sy < height and 0 <= sx < width:
                        out[:, y, x] += attention[q, p] * values[:, sy, sx] / 4.0
    return out


@pytest.mark.parametrize("fusion", ["dilated", "conv"])
def test_swap_propagation_matches_loop_reference_and_keeps_known_features(fusion):
    coarse, coarse_mask, probs, fine, fine_mask = _swap_inputs(seed=1)
    swap = SWAP(4, gate="soft", fusion=fusion).double()
    result = swap(coarse.double(), coarse_mask.double(), probs.double(), fine.double(), fine_mask.double())
    assert result.fine.shape == fine.shape and result.attention.shape == (2, 16, 16)
    for n in range(2):
        paste = _loop_propagate(result.attention[n].detach().numpy(), fine[n].double().numpy())
        m = fine_mask[n].double().numpy()
        filled = torch.from_numpy(m * paste + (1 - m) * fine[n].double().numpy())[None]
        expected = fine_mask[n : n + 1].double() * swap.fuse(filled) + (1 - fine_mask[n : n + 1].double()) * fine[n : n + 1].double()
        torch.testing.assert_close(result.fine[n : n + 1], expected, rtol=0, atol=1e-5)
    known = (fine_mask == 0).expand_as(fine)
    assert torch.equal(result.fine[known].float(), fine[known])


def test_swap_gate_switch_and_errors():
    coarse, coarse_mask, probs, fine, fine_mask = _swap_inputs(seed=2)
    gated = SWAP(4, gate="hard")(coarse, coarse_mask, probs, fine, fine_mask)
    ungated = SWAP(4, gate="none")(coarse, coarse_mask, None, fine, fine_mask)
    assert not torch.allclose(gated.attention, ungated.attention)
    assert ungated.fallback_count.tolist() == [0, 0]
    with pytest.raises(ValueError, match="gate must be one of"):
        SWAP(4, gate="strict")
    with pytest.raises(ValueError, match="fusion must be one of"):
        SWAP(4, fusion="sum")
    with pytest.raises(ValueError, match="twice the coarse map"):
        SWAP(4)(coarse, coarse_mask, probs, fine[..., :6, :6], fine_mask[..., :6, :6])


@pytest.mark.parametrize("swap_levels", [1, 2])
def test_generator_heads_at_every_scale(swap_levels):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 3:11, 4:12] = 1.0
    out = CoherenceGenerator(cnum=4, num_classes=5, swap_levels=swap_levels)(image * (1 - mask), mask)
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 4, 4), (2, 3, 8, 8), (2, 3, 16, 16)]
    assert [tuple(x.shape) for x in out.seg_logits] == [(2, 5, 4, 4), (2, 5, 8, 8), (2, 5, 16, 16)]
    assert [tuple(a.shape) for a in out.attentions] == [(2, 16, 16), (2, 64, 64)][:swap_levels]
    assert out.fallback_count.shape == (2,)
    with pytest.raises(ValueError, match="swap_levels"):
        CoherenceGenerator(cnum=4, swap_levels=3)


@pytest.mark.parametrize("structure_weight,nonlocal_weight,mode", [(0.1, 1.0, "affinity"), (0.0, 1.0, "nearest"), (0.1, 0.0, "affinity")])
def test_method_one_step_with_loss_switches(structure_weight, nonlocal_weight, mode, plain_steps):
    torch.manual_seed(1)
    method = CoherenceMethod(cnum=4, structure_weight=structure_weight, nonlocal_weight=nonlocal_weight, nonlocal_mode=mode)
    image = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 2:14] = 1.0
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 8:] = 3
    before = [p.detach().clone() for p in method.generator.encoder.parameters()]
    logged = plain_steps(method)({"image": image, "mask": mask, "labels": labels})
    assert ("d/d_t" in logged) == (structure_weight > 0) and ("g/adv_s" in logged) == (structure_weight > 0)
    assert ("g/nonlocal" in logged) == (nonlocal_weight > 0)
    assert {f"g/seg_ce_{s}" for s in range(3)} <= set(logged)
    assert any(not torch.equal(b, p) for b, p in zip(before, method.generator.encoder.parameters()))
    assert method.inpaint(image, mask).shape == image.shape


def test_phi_does_not_train_the_encoder():
    method = CoherenceMethod(cnum=4, structure_weight=0.0)
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    method.phi(image).sum().backward()
    assert all(p.grad is None for p in method.generator.encoder.parameters())
    assert image.grad is not None and image.grad.abs().sum() > 0
