"""Semantic-gated contextual attention and attention transfer against plain-loop references."""

import math

import numpy as np
import pytest
import torch

from inpaintlib.attention.semantic import (
    DilatedFusion,
    attention_transfer,
    downsample_labels,
    downsample_mask,
    semantic_contextual_attention,
    semantic_gate,
)

# ----------------------------------------------------------------------------------------------
# Plain-loop references (numpy, one position at a time)
# ----------------------------------------------------------------------------------------------


def _patch(x: np.ndarray, i: int, j: int, k: int, top: int) -> np.ndarray:
    """The k x k patch of x (C, H, W) whose top-left corner is (i - top, j - top), zero outside."""
    channels, height, width = x.shape
    out = np.zeros((channels, k, k))
    for dy in range(k):
        for dx in range(k):
            y, z = i - top + dy, j - top + dx
            if 0 <= y < height and 0 <= z < width:
                out[:, dy, dx] = x[:, y, z]
    return out


def reference_attention(features, mask, probs, gate, scale=10.0):
    """a_ij = softmax_j(scale cos(p_i, p_j) + log(g_ij v_j + 1e-8)) with the fallback, looping over i, j."""
    batch, _, height, width = features.shape
    num = height * width
    attention = np.zeros((batch, num, num))
    fallback = np.zeros((batch, num), dtype=bool)
    for n in range(batch):
        patches, valid, label = [], [], []
        for p in range(num):
            i, j = divmod(p, width)
            patch = _patch(features[n], i, j, 3, 1).ravel()
            patches.append(patch / max(np.sqrt((patch**2).sum()), 1e-4))
            valid.append(1.0 if _patch(mask[n], i, j, 3, 1).sum() == 0 else 0.0)
            if probs is not None:
                label.append(int(np.argmax(probs[n, :, i, j])))
        for q in range(num):
            qi, qj = divmod(q, width)
            has_source = gate == "none" or any(valid[p] == 1 and label[p] == label[q] for p in range(num))
            logits = np.zeros(num)
            for p in range(num):
                pi, pj = divmod(p, width)
                if gate == "hard":
                    g = 1.0 if label[p] == label[q] else 0.0
                elif gate == "soft":
                    g = float(np.dot(probs[n, :, qi, qj], probs[n, :, pi, pj]))
                else:
                    g = 1.0
                prior = g * valid[p] if has_source else valid[p]
                logits[p] = scale * float(np.dot(patches[q], patches[p])) + math.log(prior + 1e-8)
            weights = np.exp(logits - logits.max())
            attention[n, q] = weights / weights.sum()
            fallback[n, q] = (not has_source) and mask[n, 0, qi, qj] == 1
    return attention, fallback


def reference_transfer(attention, values, mask):
    """Paste sum_j a_ij q_j pixel by pixel: 4x4 stride-2 patches / 4 (2x grid) or 3x3 / coverage (same grid)."""
    batch, channels, height, width = values.shape
    num = attention.shape[1]
    rate = 1 if height * width == num else 2
    small_w = width // rate
    kernel, top = (3, 1) if rate == 1 else (4, 1)
    canvas = np.zeros((batch, channels, height, width))
    cover = np.zeros((height, width))
    for n in range(batch):
        sources = []
        for p in range(num):
            pi, pj = divmod(p, small_w)
            sources.append(_patch(values[n], pi * rate, pj * rate, kernel, top))
        for q in range(num):
            qi, qj = divmod(q, small_w)
            pasted = sum(attention[n, q, p] * sources[p] for p in range(num))
            for dy in range(kernel):
                for dx in range(kernel):
                    y, x = qi * rate - top + dy, qj * rate - top + dx
                    if 0 <= y < height and 0 <= x < width:
                        canvas[n, :, y, x] += pasted[:, dy, dx]
                        if n == 0:
                            cover[y, x] += 1
    paste = canvas / (cover if rate == 1 else 4.0)
    return mask * paste + (1 - mask) * values


def _case(batch, channels, height, width, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)
    logits = 2.0 * torch.randn(batch, classes, height, width, generator=generator, dtype=torch.float64)
    mask = torch.zeros(batch, 1, height, width, dtype=torch.float64)
    for n in range(batch):
        top, left = int(torch.randint(0, height // 2, (1,), generator=generator)), n
        mask[n, :, top : top + height // 2, left : left + width // 2] = 1.0
    return features, mask, logits.softmax(1)


# ----------------------------------------------------------------------------------------------
# Equivalence with the references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gate,chunk_size", [("hard", None), ("hard", 7), ("soft", 5), ("none", 16)])
def test_attention_matches_loop_reference(gate, chunk_size):
    features, mask, probs = _case(2, 3, 6, 7, 3, seed=1)
    result = semantic_contextual_attention(
        features, mask, None if gate == "none" else probs, gate=gate, chunk_size=chunk_size
    )
    expected, fallback = reference_attention(features.numpy(), mask.numpy(), probs.numpy(), gate)
    np.testing.assert_allclose(result.attention.numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(result.fallback.numpy(), fallback)
    np.testing.assert_array_equal(result.fallback_count.numpy(), fallback.sum(1))


def test_attention_matches_reference_in_float32():
    features, mask, probs = _case(2, 4, 5, 6, 4, seed=2)
    result = semantic_contextual_attention(features.float(), mask.float(), probs.float(), gate="soft")
    expected, _ = reference_attention(features.numpy(), mask.numpy(), probs.numpy(), "soft")
    np.testing.assert_allclose(result.attention.numpy(), expected, rtol=0, atol=1e-5)


def test_gate_matches_definition():
    _, _, probs = _case(2, 1, 3, 4, 5, seed=3)
    labels = probs.argmax(1).flatten(1)  # (B, L)
    hard = semantic_gate(probs, "hard")
    soft = semantic_gate(probs, "soft")
    flat = probs.flatten(2)  # (B, K, L)
    for n in range(2):
        for i in range(12):
            for j in range(12):
                assert hard[n, i, j] == float(labels[n, i] == labels[n, j])
                assert abs(float(soft[n, i, j]) - float((flat[n, :, i] * flat[n, :, j]).sum())) < 1e-12
    assert torch.equal(semantic_gate(probs.argmax(1), "hard"), hard)


@pytest.mark.parametrize("values_scale", [1, 2])
def test_transfer_matches_loop_reference(values_scale):
    generator = torch.Generator().manual_seed(4)
    height, width = 4, 5
    attention = torch.rand(2, 20, 20, generator=generator, dtype=torch.float64).softmax(-1)
    values = torch.randn(2, 3, height * values_scale, width * values_scale, generator=generator, dtype=torch.float64)
    mask = (torch.rand(2, 1, *values.shape[-2:], generator=generator) < 0.4).to(torch.float64)
    output = attention_transfer(attention, values, mask)
    expected = reference_transfer(attention.numpy(), values.numpy(), mask.numpy())
    np.testing.assert_allclose(output.numpy(), expected, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# The toy test and properties
# ----------------------------------------------------------------------------------------------


def _two_class_toy():
    """An 8x8 map: class 0 on the left half, class 1 on the right, each with a constant feature vector,
    a hole straddling the boundary. Class 1's feature is class 0's plus a small offset, so ungated
    attention finds class-0 patches nearly as good as class-1 ones."""
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[..., 4:] = 1
    base = torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64)
    other = base + torch.tensor([0.0, 0.05, 0.0], dtype=torch.float64)
    features = torch.where((labels == 1)[:, None], other[None, :, None, None], base[None, :, None, None])
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    mask[..., 2:6, 2:6] = 1.0
    probs = torch.nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).to(torch.float64)
    return features, mask, labels, probs


@pytest.mark.parametrize("gate", ["hard", "soft"])
def test_hole_pixel_attends_only_to_known_pixels_of_its_class(gate):
    features, mask, labels, probs = _two_class_toy()
    attention = semantic_contextual_attention(features, mask, probs, gate=gate).attention[0]  # (64, 64)
    valid = torch.ones(8, 8, dtype=torch.bool)
    valid[1:7, 1:7] = False  # sources whose 3x3 window touches the hole
    flat_labels, flat_valid = labels.flatten(), valid.flatten()
    for q in torch.nonzero(mask.flatten()).flatten().tolist():
        allowed = flat_valid & (flat_labels == flat_labels[q])
        assert float(attention[q, allowed].sum()) > 1 - 1e-6
        assert float(attention[q, ~allowed].sum()) < 1e-6
    ungated = semantic_contextual_attention(features, mask, gate="none").attention[0]
    hole = mask.flatten() > 0
    crossing = (ungated[hole][:, flat_labels != flat_labels[hole][0]]).sum()
    assert not torch.allclose(ungated, attention)
    assert float(ungated[hole][:, ~flat_valid].sum()) < 1e-5  # ungated still never reads the hole
    assert float(crossing) > 0.1  # ... but it does read the other class


def test_fallback_counts_hole_pixels_without_a_same_class_source():
    features, mask, labels, probs = _two_class_toy()
    labels = labels.clone()
    labels[..., 3:5, 3:5] = 2  # a class that exists only inside the hole: 4 hole pixels
    labels[..., 0, 0] = 3  # a class with one known pixel whose window is known: a valid source
    labels[..., 4, 4] = 3
    probs = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).to(torch.float64)
    result = semantic_contextual_attention(features, mask, probs, gate="hard")
    expected = torch.zeros(1, 64, dtype=torch.bool)
    expected[0, [3 * 8 + 3, 3 * 8 + 4, 4 * 8 + 3]] = True  # (4, 4) is class 3 and has (0, 0)
    assert torch.equal(result.fallback, expected)
    assert result.fallback_count.tolist() == [3]
    valid = torch.ones(8, 8, dtype=torch.bool)
    valid[1:7, 1:7] = False
    row = result.attention[0, 3 * 8 + 3]  # falls back to every valid source
    assert float(row[valid.flatten()].sum()) > 1 - 1e-6
    assert semantic_contextual_attention(features, mask, gate="none").fallback_count.tolist() == [0]


def test_rows_sum_to_one_and_chunking_does_not_change_the_result():
    features, mask, probs = _case(2, 4, 8, 8, 3, seed=5)
    whole = semantic_contextual_attention(features, mask, probs, gate="soft", chunk_size=None)
    torch.testing.assert_close(whole.attention.sum(-1), torch.ones(2, 64, dtype=torch.float64))
    for chunk in (7, 63):
        part = semantic_contextual_attention(features, mask, probs, gate="soft", chunk_size=chunk)
        torch.testing.assert_close(part.attention, whole.attention, rtol=0, atol=1e-12)


def test_known_pixels_pass_through_unchanged():
    features, mask, probs = _case(2, 4, 8, 8, 3, seed=6)
    attention = semantic_contextual_attention(features, mask, probs).attention
    values = torch.randn(2, 5, 16, 16, dtype=torch.float64)
    big_mask = torch.nn.functional.interpolate(mask, scale_factor=2.0)
    for vals, m in ((values, big_mask), (features, mask)):
        out = attention_transfer(attention, vals, m)
        known = (m == 0).expand_as(vals)
        assert torch.equal(out[known], vals[known])
        assert not torch.allclose(out[~known], vals[~known])


def test_transfer_copies_a_source_exactly_with_one_hot_attention():
    values = torch.arange(2 * 6 * 6, dtype=torch.float64).reshape(1, 2, 6, 6)
    attention = torch.zeros(1, 36, 36, dtype=torch.float64)
    attention[0, :, 2 * 6 + 2] = 1.0  # everything reads the patch centred at (2, 2)
    mask = torch.ones(1, 1, 6, 6, dtype=torch.float64)
    out = attention_transfer(attention, values, mask)
    # interior pixel (2, 3) = mean over its 9 covering queries of values at (2, 2) + (offset): by hand
    expected = sum(values[0, :, 2 + (2 - qi), 2 + (3 - qj)] for qi in (1, 2, 3) for qj in (2, 3, 4)) / 9
    torch.testing.assert_close(out[0, :, 2, 3], expected)


def test_gradients_reach_features_and_soft_gate():
    features, mask, probs = _case(1, 2, 4, 4, 2, seed=7)
    logits = probs.log().requires_grad_()
    feats = features.clone().requires_grad_()

    def layer(f, lg):
        attention = semantic_contextual_attention(f, mask, lg.softmax(1), gate="soft", chunk_size=5).attention
        return attention_transfer(attention, f, mask)

    assert torch.autograd.gradcheck(layer, (feats, logits), fast_mode=True)


def test_downsample_mask_keeps_thin_strokes_and_fusion_shapes():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 3, :] = 1.0  # a one-pixel stroke
    small = downsample_mask(mask, (4, 4))
    assert small[0, 0, 1].tolist() == [1.0] * 4 and small.sum() == 4
    fusion = DilatedFusion(8, 12)
    assert fusion(torch.randn(2, 8, 16, 16)).shape == (2, 12, 16, 16)
    assert len(fusion.branches) == 4 and [b.dilation for b in fusion.branches] == [(1, 1), (2, 2), (4, 4), (8, 8)]


def test_downsample_labels_is_a_majority_vote():
    labels = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, 2], [3, 3, 2, 2], [3, 1, 2, 0]]])
    assert downsample_labels(labels, (2, 2), 4).tolist() == [[[0, 1], [3, 2]]]
    tie = torch.tensor([[[2, 1], [1, 2]]])
    assert downsample_labels(tie, (1, 1), 3).tolist() == [[[1]]]  # tie: lowest class
    with pytest.raises(ValueError, match="long tensor"):
        downsample_labels(labels.float(), (2, 2), 4)


# ----------------------------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_errors():
    features, mask, probs = _case(1, 2, 4, 4, 2, seed=8)
    with pytest.raises(ValueError, match="gate must be one of"):
        semantic_contextual_attention(features, mask, probs, gate="maybe")
    with pytest.raises(ValueError, match="needs seg_probs"):
        semantic_contextual_attention(features, mask, None, gate="hard")
    with pytest.raises(ValueError, match="4-D"):
        semantic_contextual_attention(features[0], mask, probs)
    with pytest.raises(ValueError, match="mask must have shape"):
        semantic_contextual_attention(features, mask[..., :3], probs)
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        semantic_contextual_attention(features, mask * 0.5, probs)
    with pytest.raises(ValueError, match="same batch and grid"):
        semantic_contextual_attention(features, mask, probs[..., :2])
    with pytest.raises(ValueError, match="non-negative"):
        semantic_contextual_attention(features, mask, probs - 1.0)
    with pytest.raises(ValueError, match="soft gate needs class probabilities"):
        semantic_gate(probs.argmax(1), "soft")
    with pytest.raises(ValueError, match="chunk_size"):
        semantic_contextual_attention(features, mask, probs, chunk_size=0)
    attention = torch.eye(16, dtype=torch.float64)[None]
    with pytest.raises(ValueError, match="values grid"):
        attention_transfer(attention, torch.zeros(1, 2, 6, 6), torch.zeros(1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"\(B, L, L\)"):
        attention_transfer(attention[:, :3], features, mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        attention_transfer(attention, features, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="multiple"):
        downsample_mask(torch.zeros(1, 1, 9, 9), (4, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        DilatedFusion(8, 6)
