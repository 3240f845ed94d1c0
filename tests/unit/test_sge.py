import math

import pytest
import torch
import torch.nn.functional as F

from inpaintlib.models.sge import (
    PlainResBlock,
    SGEGenerator,
    SGEMethod,
    downsample_labels,
    downsample_mask,
    mask_cascade,
    next_scale_hole,
    scem_update,
    segmentation_confidence,
)
from inpaintlib.nn.spade import SGMBlock

# A 2x3 image, K = 3 classes. Confidence (max over classes) per pixel, row by row:
#   0.34 (known)  0.90 (hole)  0.40 (hole)
#   0.60 (hole)   0.50 (hole)  0.35 (known)
HAND_PROB = torch.tensor(
    [
        [[0.34, 0.90, 0.30], [0.20, 0.25, 0.30]],
        [[0.33, 0.05, 0.40], [0.20, 0.25, 0.35]],
        [[0.33, 0.05, 0.30], [0.60, 0.50, 0.30]],
    ]
)[None]
HAND_MASK = torch.tensor([[0.0, 1, 1], [1, 1, 0]])[None, None]


@pytest.mark.parametrize(
    "q, expected",
    [
        (0.0, [[0, 0, 0], [0, 0, 0]]),  # rank 0: tau = 0.40, nothing below it
        (0.25, [[0, 0, 1], [0, 0, 0]]),  # rank 1: tau = 0.50 -> only the 0.40 pixel
        (0.5, [[0, 0, 1], [0, 1, 0]]),  # rank 2: tau = 0.60 -> 0.40 and 0.50
        (0.74, [[0, 0, 1], [0, 1, 0]]),  # floor(2.96) = 2
        (0.75, [[0, 0, 1], [1, 1, 0]]),  # rank 3: tau = 0.90
        (1.0, [[0, 1, 1], [1, 1, 0]]),  # rank 4 = |H|: the whole hole, known pixels never
    ],
)
def test_scem_on_a_hand_built_probability_map(q, expected):
    new = scem_update(HAND_PROB, HAND_MASK, q)
    assert new.shape == HAND_MASK.shape and new.dtype == HAND_MASK.dtype
    assert torch.equal(new, torch.tensor(expected, dtype=torch.float32)[None, None])


def test_scem_ties_at_the_threshold_are_accepted():
    prob = torch.tensor([0.5, 0.5, 0.5, 0.9]).view(1, 1, 2, 2)
    prob = torch.cat([prob, 1 - prob], 1)  # confidence = max(p, 1 - p) = 0.5, 0.5, 0.5, 0.9
    new = scem_update(prob, torch.ones(1, 1, 2, 2), 0.5)  # tau = 0.5, nothing strictly below
    assert new.sum() == 0


def _scem_loop(prob: torch.Tensor, mask: torch.Tensor, q: float) -> torch.Tensor:
    """Plain-loop reference: per image, sort the hole's confidences and keep those below rank floor(q |H|)."""
    out = torch.zeros_like(mask)
    for b in range(prob.shape[0]):
        hole = [(y, x) for y in range(mask.shape[2]) for x in range(mask.shape[3]) if mask[b, 0, y, x] == 1]
        conf = {p: max(float(prob[b, k, p[0], p[1]]) for k in range(prob.shape[1])) for p in hole}
        ranked = sorted(conf.values())
        rank = math.floor(q * len(hole))
        tau = ranked[rank] if rank < len(hole) else math.inf
        for p in hole:
            if conf[p] < tau:
                out[b, 0, p[0], p[1]] = 1
    return out


@pytest.mark.parametrize("q", [0.1, 0.3, 0.5, 0.9])
def test_scem_matches_a_loop_reference_per_image(q):
    torch.manual_seed(0)
    prob = torch.randn(3, 5, 7, 6).softmax(1)
    mask = (torch.rand(3, 1, 7, 6) < 0.6).float()
    mask[2] = 0  # an image without a hole
    new = scem_update(prob, mask, q)
    assert torch.equal(new, _scem_loop(prob, mask, q))
    assert bool((new <= mask).all()), "a known pixel was re-masked"
    counts = new.flatten(1).sum(1)
    assert counts.tolist() == [math.floor(q * n) for n in mask.flatten(1).sum(1).tolist()]


def test_scem_is_invariant_to_permuting_classes_and_detached():
    torch.manual_seed(1)
    logits = torch.randn(2, 7, 8, 8, requires_grad=True)
    mask = (torch.rand(2, 1, 8, 8) < 0.5).float()
    perm = torch.randperm(7)
    new = scem_update(logits.softmax(1), mask, 0.4)
    assert torch.equal(new, scem_update(logits.softmax(1)[:, perm], mask, 0.4))
    assert not new.requires_grad


def test_scem_clear_errors():
    prob, mask = torch.rand(1, 3, 4, 4), torch.ones(1, 1, 4, 4)
    with pytest.raises(ValueError, match="q"):
        scem_update(prob, mask, 1.5)
    with pytest.raises(ValueError, match="prob"):
        scem_update(torch.rand(1, 3, 4, 5), mask, 0.5)
    with pytest.raises(ValueError, match="0 .known. or 1"):
        scem_update(prob, mask * 0.5, 0.5)
    with pytest.raises(ValueError, match="prob"):
        segmentation_confidence(torch.rand(3, 4, 4))


def test_resizing_helpers():
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 0, 1] = 1  # one fine pixel makes its whole coarse block missing
    assert torch.equal(downsample_mask(mask, 2), torch.tensor([[1.0, 0], [0, 0]])[None, None])
    labels = torch.arange(16).view(1, 4, 4)
    assert torch.equal(downsample_labels(labels, 2), labels[:, 1::2, 1::2])  # block centres
    remasked = torch.tensor([[1.0, 0], [0, 1]])[None, None]
    full = torch.zeros(1, 1, 4, 4)
    full[0, 0, :2, :] = 1  # original hole: the top half
    expected = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])[None, None]
    assert torch.equal(next_scale_hole(remasked, full), expected)


def test_mask_cascade_extremes():
    torch.manual_seed(2)
    mask = (torch.rand(2, 1, 16, 16) < 0.4).float()
    probs = [torch.rand(2, 3, r, r).softmax(1) for r in (4, 8, 16)]
    holes, _ = mask_cascade(probs, mask, 1.0)  # nothing accepted: every scale fills the original hole
    for hole in holes:
        assert torch.equal(hole, downsample_mask(mask, hole.shape[-1]))
    holes, remasked = mask_cascade(probs, mask, 0.0)  # everything accepted at the first scale
    assert remasked[0].sum() == 0 and holes[1].sum() == 0 and holes[2].sum() == 0
    holes, remasked = mask_cascade(probs, mask, 0.5)
    sizes = [h.sum().item() for h in holes]
    assert all(h.sum() <= hole.sum() for h, hole in zip(remasked, holes))
    assert sizes[1] <= 4 * sizes[0] and bool((holes[2] <= mask).all())


def _batch(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, size, size, generator=g)
    mask = torch.zeros(2, 1, size, size)
    mask[0, :, 4:20, 6:26] = 1
    mask[1, :, 10:30, 2:12] = 1
    return image, mask


@pytest.mark.parametrize("num_scales", [1, 2, 3])
def test_generator_shapes_and_its_mask_schedule_is_the_cascade(num_scales):
    torch.manual_seed(3)
    gen = SGEGenerator((4, 8, 8, 8), num_scales=num_scales, q=0.5, sgm_hidden=4)
    image, mask = _batch()
    out = gen.forward_scales(image, mask)
    sizes = [32 // 2 ** (num_scales - 1 - s) for s in range(num_scales)]
    assert [p.shape[-1] for p in out.images] == sizes and out.image is out.images[-1]
    assert [z.shape[1:] for z in out.logits] == [(7, r, r) for r in sizes]
    assert out.coarse_logits.shape == (2, 7, 4, 4)
    holes, remasked = mask_cascade(out.probs, mask, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(holes, out.holes))
    assert all(torch.equal(a, b) for a, b in zip(remasked, out.remasked))
    assert all(bool((c * h == 0).all()) for c, h in zip(out.contexts, out.holes))  # context is blank in the hole


def test_without_scem_every_scale_fills_the_original_hole():
    gen = SGEGenerator((4, 8, 8, 8), use_scem=False, sgm_hidden=4)
    image, mask = _batch()
    out = gen.forward_scales(image, mask)
    for hole in out.holes:
        assert torch.equal(hole, downsample_mask(mask, hole.shape[-1]))


def test_output_does_not_see_the_hole_content():
    torch.manual_seed(4)
    gen = SGEGenerator((4, 8, 8, 8), sgm_hidden=4).eval()
    image, mask = _batch()
    other = image * (1 - mask) + torch.rand_like(image) * mask
    assert torch.equal(gen(image, mask), gen(other, mask))


@pytest.mark.parametrize("use_sgm", [True, False])
def test_sgm_passes_the_previous_segmentation_into_the_image(use_sgm):
    torch.manual_seed(5)
    gen = SGEGenerator((4, 8, 8, 8), num_scales=2, use_sgm=use_sgm, use_scem=False, sgm_hidden=4)
    assert any(isinstance(m, SGMBlock) for m in gen.modules()) == use_sgm
    for module in gen.modules():
        if isinstance(module, SGMBlock):  # leave the zero start, as after some training
            for conv in (module.spade1.gamma, module.spade2.gamma):
                torch.nn.init.normal_(conv.weight, std=0.1)
    image, mask = _batch()
    gen(image, mask).sum().backward()
    grad = gen.seg_heads[0].weight.grad  # first output scale's segmentation head
    assert (grad is not None and grad.abs().sum() > 0) == use_sgm


def test_plain_block_is_the_zero_initialised_sgm_block():
    torch.manual_seed(6)
    plain, sgm = PlainResBlock(4), SGMBlock(4, 3, hidden=5, zero_init=True)
    for name in ("conv1", "conv2"):
        getattr(sgm, name).load_state_dict(getattr(plain, name).state_dict())
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(plain(x), sgm(x, torch.rand(2, 3, 8, 8)), atol=1e-5, rtol=1e-5)


def test_generator_clear_errors():
    with pytest.raises(ValueError, match="num_scales"):
        SGEGenerator((4, 8, 8, 8), num_scales=4)
    with pytest.raises(ValueError, match="q"):
        SGEGenerator(q=-0.1)
    gen = SGEGenerator((4, 8, 8, 8), sgm_hidden=4)
    with pytest.raises(ValueError, match="divisible"):
        gen(torch.rand(1, 3, 20, 20), torch.zeros(1, 1, 20, 20))
    with pytest.raises(ValueError, match="mask"):
        gen(torch.rand(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_method_terms_and_a_few_steps_lower_the_loss(plain_steps):
    torch.manual_seed(7)
    method = SGEMethod((4, 8, 8, 8), sgm_hidden=4, adv_weight=0.1, disc_channels=(8, 8), lr=3e-3)
    image, mask = _batch()
    labels = (image[:, 0] * 7).long().clamp(max=6)
    batch = {"image": image, "mask": mask, "labels": labels}
    step = plain_steps(method)
    first = step(batch)
    assert set(first) == {"g/l1_hole", "g/l1_valid", "g/seg_ce", "g/adv", "d/hinge"}
    for _ in range(10):
        last = step(batch)
    assert last["g/l1_valid"] + last["g/seg_ce"] < first["g/l1_valid"] + first["g/seg_ce"]
    assert method.inpaint(image, mask).shape == image.shape
