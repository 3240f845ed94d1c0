"""SPL: official sizes and shapes, inputs, losses on fixed tensors, the method's terms, the teacher and its loader."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from inpaintlib.models.spl import (
    SceneTeacher,
    SpaceToDepth,
    SPLDiscriminator,
    SPLGenerator,
    SPLInpainter,
    SPLMethod,
    TeacherTraining,
    distillation_loss,
    feature_pca_rgb,
    hole_feature_error,
    hole_weighted_l1,
    load_teacher,
    nsgan_d_loss,
    nsgan_g_loss,
    prior_learner_input,
    save_teacher,
    spl_method_from_files,
    teacher_input,
    teacher_scores,
    train_teacher,
)
from inpaintlib.train import CheckpointError, count_parameters, save_weights

TINY = dict(channels=4, prior_channels=4, middle_blocks=2, rdb_blocks=2, rdb_layers=2, rdb_growth=4,
            prior_res_blocks=1, spade_hidden=8)


def _batch(b: int = 2, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, 1, size, size)
    mask[..., size // 4 : size // 2, size // 8 : size - size // 8] = 1
    return {"image": torch.rand(b, 3, size, size, generator=g), "mask": mask,
            "present": (torch.rand(b, 7, generator=g) > 0.5).float()}


def test_official_sizes_match_a_hand_count_of_the_official_networks():
    # Counted by hand from WendongZh/SPL networks.py: G about 45.60 M parameters, D 2,763,776 (five bias-free convs).
    assert round(count_parameters(SPLGenerator()) / 1e6, 2) == 45.60
    assert count_parameters(SPLDiscriminator()) == 3 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 16


def test_discriminator_patch_sizes():
    d = SPLDiscriminator((2, 2, 2, 2))
    assert d(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # 256 px -> 30 x 30 patch logits
    assert d(torch.rand(1, 3, 64, 64)).shape == (1, 1, 6, 6)


def test_generator_shapes_and_range():
    gen = SPLGenerator(**TINY, teacher_channels=6)
    batch = _batch()
    out = gen(batch["image"] * (1 - batch["mask"]), batch["mask"])
    assert out.image.shape == (2, 3, 32, 32) and 0 <= out.image.min() and out.image.max() <= 1
    assert out.layout.shape == (2, 16, 8, 8) and out.student_features.shape == (2, 6, 8, 8)
    plain = SPLGenerator(**TINY, use_prior=False)
    out = plain(batch["image"], batch["mask"])
    assert plain.prior is None and out.layout is None and out.student_features is None


def test_inpainter_returns_the_image_of_the_generator_with_the_same_weights():
    gen = SPLGenerator(**TINY).eval()
    inpainter = SPLInpainter(**TINY).eval()
    inpainter.load_state_dict(gen.state_dict())
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(inpainter(batch["image"], batch["mask"]), gen(batch["image"], batch["mask"]).image)


def test_generator_ignores_hole_pixels_and_checks_inputs():
    gen = SPLGenerator(**TINY).eval()
    batch = _batch()
    noisy = batch["image"] + batch["mask"] * torch.rand_like(batch["image"])
    with torch.no_grad():
        a, b = gen(batch["image"], batch["mask"]), gen(noisy, batch["mask"])
    assert torch.equal(a.image, b.image) and torch.equal(a.layout, b.layout)
    with pytest.raises(ValueError, match="divisible by 4"):
        gen(torch.rand(1, 3, 30, 30), torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match="exactly 0"):
        gen(torch.rand(1, 3, 32, 32), torch.full((1, 1, 32, 32), 0.5))
    with pytest.raises(ValueError, match="RGB"):
        gen(torch.rand(1, 4, 32, 32), torch.zeros(1, 1, 32, 32))


def test_prior_learner_input_fills_white_and_upsamples_nearest():
    image = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]]]]).repeat(1, 3, 1, 1)
    mask = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    x = prior_learner_input(image * (1 - mask), mask)
    assert x.shape == (1, 4, 4, 4)
    expected_rgb = torch.tensor([[0.2, 0.2, 1.0, 1.0], [0.2, 0.2, 1.0, 1.0], [0.6, 0.6, 0.8, 0.8], [0.6, 0.6, 0.8, 0.8]])
    assert torch.allclose(x[0, 0], expected_rgb) and torch.allclose(x[0, 2], expected_rgb)
    assert torch.equal(x[0, 3], torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0.0]]))


def test_teacher_input_is_bilinear_upsampling():
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 3, 2, 4)
    up = teacher_input(ramp)
    assert up.shape == (1, 3, 4, 8)
    # half-pixel centres (cv2.resize / align_corners=False): 0, 0.25, 0.75, 1.25, ..., 3 at the border
    assert torch.allclose(up[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]))


def test_space_to_depth_and_teacher_shapes():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    y = SpaceToDepth(4)(x)
    assert y.shape == (2, 48, 2, 2)
    assert y[1, 2 * 16 + 1 * 4 + 3, 1, 0] == x[1, 2, 4 + 1, 0 + 3]  # channel c*16 + dy*4 + dx of block (1, 0)
    teacher = SceneTeacher(num_classes=5, channels=(6, 8, 10))
    assert teacher.features(torch.rand(2, 3, 64, 64)).shape == (2, 8, 8, 8)
    assert teacher(torch.rand(2, 3, 64, 64)).shape == (2, 5)
    with pytest.raises(ValueError, match="divisible by 8"):
        teacher.features(torch.rand(1, 3, 60, 60))


def test_hole_weighted_l1_by_hand():
    pred = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.25]]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # |d| = 1, 0, 0.5, 0.25; weights 3, 1, 3, 1 -> (3 + 0 + 1.5 + 0.25) / 4
    assert math.isclose(float(hole_weighted_l1(pred, target, mask)), 4.75 / 4, rel_tol=1e-6)


def test_distillation_loss_by_hand_with_nearest_mask_downsampling():
    student = torch.zeros(1, 2, 2, 2)
    teacher = torch.tensor([[[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [4.0, 1.0]]]])
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0, 0] = 1  # nearest to 2x2 keeps pixel (0, 0) of each 2x2 block: cell (0, 0) is a hole
    mask[..., 1, 3] = 1  # not sampled by nearest: cell (0, 1) stays known
    # weights 4, 1, 1, 1 per channel; sum = (4*1 + 2) + (4 + 1) = 11 over 8 elements
    assert math.isclose(float(distillation_loss(student, teacher, mask)), 11 / 8, rel_tol=1e-6)
    with pytest.raises(ValueError, match="differ"):
        distillation_loss(student, teacher[:, :1], mask)


def test_hole_feature_error_by_hand():
    student = torch.zeros(2, 2, 2, 2)
    teacher = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[3.0, 0.0], [1.0, 0.0]]]]).repeat(2, 1, 1, 1)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, 0, 0] = 1  # image 0: hole cell (0, 0) -> mean over channels (1 + 3) / 2
    mask[0, :, 2, 2] = 1  # and cell (1, 1) -> (4 + 0) / 2
    err = hole_feature_error(student, teacher, mask)
    assert torch.allclose(err, torch.tensor([(2.0 + 2.0) / 2, 0.0]))  # image 1 has no hole: 0


def test_nsgan_losses_equal_the_official_sigmoid_bce():
    real, fake = torch.tensor([[2.0, -1.0, 0.3]]), torch.tensor([[-0.5, 1.5, 0.0]])
    bce = torch.nn.BCELoss()
    d_official = 0.5 * (bce(torch.sigmoid(real), torch.ones(1, 3)) + bce(torch.sigmoid(fake), torch.zeros(1, 3)))
    assert torch.allclose(nsgan_d_loss(real, fake), d_official)
    assert torch.allclose(nsgan_g_loss(fake), bce(torch.sigmoid(fake), torch.ones(1, 3)))
    # by hand: -log(sigmoid(0)) = log 2
    assert math.isclose(float(nsgan_g_loss(torch.zeros(4))), math.log(2), rel_tol=1e-6)


class _Recorder:
    def __init__(self, method):
        self.opts, self.terms = method.configure_optimizers(), {}

    def __call__(self, name, terms):
        self.terms[name] = {k: v.detach().clone() for k, v in terms.items()}
        total = sum(terms.values())
        self.opts[name].zero_grad()
        total.backward()
        self.opts[name].step()
        return total


def test_method_terms_and_weights_follow_the_official_loss():
    torch.manual_seed(0)
    teacher = SceneTeacher(channels=(4, 6, 8)).eval()
    method = SPLMethod(teacher, **TINY, disc_channels=(4, 4, 4, 4), adv_weight=0.5, l1_weight=10.0, prior_weight=2.0)
    method.train()
    assert not method.teacher.training and method.generator.training
    batch = _batch()
    gen_state = {k: v.clone() for k, v in method.generator.state_dict().items()}
    disc_state = {k: v.clone() for k, v in method.discriminator.state_dict().items()}
    rec = _Recorder(method)
    method.training_step(batch, rec)
    assert set(rec.terms) == {"d", "g"} and set(rec.terms["g"]) == {"l1", "adv", "prior"}
    # recompute every term with the weights as they were before the step
    gen = SPLGenerator(**TINY, teacher_channels=6)
    gen.load_state_dict(gen_state)
    disc = SPLDiscriminator((4, 4, 4, 4))
    disc.load_state_dict(disc_state)
    gen.train()
    image, mask = batch["image"], batch["mask"]
    with torch.no_grad():
        out = gen(image * (1 - mask), mask)
        f_t = teacher.features(F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False))
        d_loss = nsgan_d_loss(disc(image), disc(out.image))
    assert torch.allclose(rec.terms["d"]["nsgan"], d_loss, atol=1e-5)
    assert torch.allclose(rec.terms["g"]["l1"], 10 * ((out.image - image).abs() * (1 + 2 * mask)).mean(), atol=1e-5)
    m_down = F.interpolate(mask, size=f_t.shape[-2:], mode="nearest")
    assert torch.allclose(rec.terms["g"]["prior"], 2 * ((out.student_features - f_t).abs() * (1 + 3 * m_down)).mean(), atol=1e-5)


def test_teacher_is_frozen_during_spl_training():
    teacher = SceneTeacher(channels=(4, 6, 8))
    method = SPLMethod(teacher, **TINY, disc_channels=(4, 4, 4, 4))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    method.train()
    method.training_step(_batch(), _Recorder(method))
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # BN running stats too
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not any(p is q for p in teacher.parameters() for g in method.configure_optimizers().values()
                   for group in g.param_groups for q in group["params"])


def test_ablation_switches():
    batch = _batch()
    no_distill = SPLMethod(None, distill=False, **TINY, disc_channels=(4, 4, 4, 4))
    rec = _Recorder(no_distill)
    no_distill.training_step(batch, rec)
    assert set(rec.terms["g"]) == {"l1", "adv"} and no_distill.generator.prior is not None
    no_prior = SPLMethod(None, use_prior=False, distill=False, **TINY, adv_weight=0.0)
    rec = _Recorder(no_prior)
    no_prior.training_step(batch, rec)
    assert set(rec.terms) == {"g"} and set(rec.terms["g"]) == {"l1"} and no_prior.generator.prior is None
    with pytest.raises(ValueError, match="needs a teacher"):
        SPLMethod(None, **TINY)
    with pytest.raises(ValueError, match="use_prior=True"):
        SPLMethod(SceneTeacher(), use_prior=False, distill=True, **TINY)


def test_a_few_steps_reduce_the_loss_on_one_batch():
    torch.manual_seed(0)
    method = SPLMethod(SceneTeacher(channels=(4, 6, 8)), **TINY, adv_weight=0.0, lr=5e-3)
    method.train()
    rec, batch, l1 = _Recorder(method), _batch(seed=3), []
    batch["image"] = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(2, 3, 32, 32).clone()  # one flat colour
    for _ in range(20):
        method.training_step(batch, rec)
        l1.append(float(rec.terms["g"]["l1"]))
    assert sum(l1[-5:]) / 5 < 0.6 * l1[0]
    pred = method.inpaint(batch["image"] * (1 - batch["mask"]), batch["mask"])
    assert pred.shape == batch["image"].shape and pred.device == batch["image"].device


class _FixedTeacher(SceneTeacher):
    def __init__(self, logits):
        super().__init__(num_classes=logits.shape[1], channels=(4, 4, 4))
        self.logits = logits

    def forward(self, image):
        return self.logits[: len(image)]


def test_teacher_scores_by_hand():
    logits = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -3.0]])
    present = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # one wrong decision, in image 0
    scores = teacher_scores(_FixedTeacher(logits), torch.rand(2, 3, 8, 8), present)
    assert math.isclose(scores["label_accuracy"], 5 / 6, rel_tol=1e-6) and scores["exact_match"] == 0.5


def test_teacher_training_step_and_train_teacher_returns_it_frozen():
    torch.manual_seed(0)
    teacher = SceneTeacher(channels=(4, 6, 8))
    reference = copy.deepcopy(teacher)
    method = TeacherTraining(teacher, lr=1e-2)
    rec, batch = _Recorder(method), _batch(b=4, size=16)
    method.training_step(batch, rec)
    with torch.no_grad():
        expected = F.binary_cross_entropy_with_logits(reference(teacher_input(batch["image"])), batch["present"])
    assert torch.allclose(rec.terms["teacher"]["bce"], expected, atol=1e-6)
    frozen = train_teacher(lambda step: batch, 2, SceneTeacher(channels=(4, 6, 8)), progress=False)
    assert not frozen.training and all(not p.requires_grad for p in frozen.parameters())


def test_teacher_checkpoint_round_trip_and_clear_errors(tmp_path):
    teacher = SceneTeacher(num_classes=4, channels=(4, 6, 8), blocks=(1, 2, 1)).eval()
    path = tmp_path / "teacher.safetensors"
    save_teacher(teacher, path)
    loaded = load_teacher(path, feature_channels=6)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded.features(x), teacher.features(x)) and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    with pytest.raises(CheckpointError, match="not found"):
        load_teacher(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_teacher(tmp_path / "junk.safetensors")
    save_weights(teacher, tmp_path / "bare.safetensors")
    with pytest.raises(CheckpointError, match="no 'spl_teacher' metadata"):
        load_teacher(tmp_path / "bare.safetensors")
    tensors = dict(teacher.state_dict())
    tensors["head.weight"] = torch.zeros(4, 3)
    save_file(tensors, str(tmp_path / "wrong.safetensors"), metadata={"spl_teacher": '{"num_classes": 4, "channels": [4, 6, 8], "blocks": [1, 2, 1]}'})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_teacher(tmp_path / "wrong.safetensors")
    with pytest.raises(CheckpointError, match="152"):
        load_teacher(path, feature_channels=152)


def test_feature_pca_recovers_a_planted_pattern_and_shares_colours():
    torch.manual_seed(0)
    ii, jj = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    pattern = torch.sin(ii / 2) + jj / 4  # (8, 8)
    direction = torch.randn(10)
    feats = pattern[None, None] * direction[None, :, None, None] + 0.01 * torch.randn(2, 10, 8, 8)
    rgb = feature_pca_rgb(feats)
    assert rgb.shape == (2, 3, 8, 8) and rgb.min() >= 0 and rgb.max() <= 1
    corr = torch.corrcoef(torch.stack([rgb[0, 0].flatten(), pattern.flatten()]))[0, 1]
    assert abs(float(corr)) > 0.99
    assert torch.equal(feature_pca_rgb(feats, reference=feats), rgb)
    # negated features: the sign rule picks the same axes, so the first map is mirrored in [0, 1]
    assert torch.allclose(feature_pca_rgb(-feats)[:, 0], 1 - rgb[:, 0], atol=1e-5)
    # drawn in the axes of a reference: a map equal to the reference's own minimum/maximum hits 0/1
    half = feature_pca_rgb(feats * 0.5, reference=feats)
    assert half[:, 0].max() < 1 and half[:, 0].min() > 0
    with pytest.raises(ValueError, match="equal C"):
        feature_pca_rgb(feats, reference=feats[:, :5])


def test_spl_method_from_files_loads_the_frozen_teacher(tmp_path):
    teacher = SceneTeacher(channels=(4, 6, 8), blocks=(1, 2, 1)).eval()
    save_teacher(teacher, tmp_path / "teacher.safetensors")
    method = spl_method_from_files(str(tmp_path / "teacher.safetensors"), **TINY, adv_weight=0.0)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(method.teacher.features(x), teacher.features(x)) and method.discriminator is None
    without = spl_method_from_files(None, use_prior=False, distill=False, **TINY)
    assert without.teacher is None and not without.use_prior
