"""LPIPS and the Fréchet distance: the formulas, the weight-file layouts and the errors. No real
weights exist here, so every number below comes from random weights in files the tests write."""

import numpy as np
import pytest
import torch
from torch import nn

from inpaintlib.fid import (extract_features, extractor_from_environment, feature_statistics, frechet_distance,
                            image_statistics, load_feature_extractor)
from inpaintlib.lpips import LPIPS, LPIPSWeightsError, lpips_from_environment, normalize_channels, vgg16_features

# torchvision's vgg16().features: index -> conv weight shape (public architecture, configuration D)
TORCHVISION_VGG16_CONVS = {
    0: (64, 3, 3, 3), 2: (64, 64, 3, 3), 5: (128, 64, 3, 3), 7: (128, 128, 3, 3), 10: (256, 128, 3, 3),
    12: (256, 256, 3, 3), 14: (256, 256, 3, 3), 17: (512, 256, 3, 3), 19: (512, 512, 3, 3), 21: (512, 512, 3, 3),
    24: (512, 512, 3, 3), 26: (512, 512, 3, 3), 28: (512, 512, 3, 3),
}


def _weight_files(tmp_path, seed=0):
    """A torchvision-layout VGG16 file (with classifier keys) and an lpips-layout linear file, random."""
    gen = torch.Generator().manual_seed(seed)
    vgg = {}
    for index, shape in TORCHVISION_VGG16_CONVS.items():
        vgg[f"features.{index}.weight"] = torch.randn(shape, generator=gen) * (2 / (9 * shape[1])) ** 0.5
        vgg[f"features.{index}.bias"] = torch.randn(shape[0], generator=gen) * 0.01
    vgg["classifier.0.weight"] = torch.zeros(4, 4)  # present in the real file, ignored
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) for k, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "vgg.pth")
    return tmp_path / "vgg16.pth", tmp_path / "vgg.pth", vgg, lin


def _images(n=2, size=32, seed=1):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_trunk_has_torchvision_keys_and_shapes():
    convs = {int(k.split(".")[0]): tuple(v.shape) for k, v in vgg16_features().state_dict().items() if k.endswith("weight")}
    assert convs == TORCHVISION_VGG16_CONVS


def test_loaded_weights_are_the_files(tmp_path):
    vgg_path, lin_path, vgg, lin = _weight_files(tmp_path)
    model = LPIPS.from_files(vgg_path, lin_path)
    assert torch.equal(model.features[28].weight, vgg["features.28.weight"])
    assert torch.equal(model.linear[4], lin["lin4.model.1.weight"])


def test_distance_matches_the_formula_written_out(tmp_path):
    vgg_path, lin_path, vgg, lin = _weight_files(tmp_path)
    model = LPIPS.from_files(vgg_path, lin_path)
    a, b = _images(seed=1), _images(seed=2)
    # eq. 1 by hand: scaled inputs, torchvision-layout trunk in plain ops, per-layer normalised squared
    # differences weighted per channel and averaged over positions
    shift, scale = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    xa, xb = (2 * a - 1 - shift) / scale, (2 * b - 1 - shift) / scale
    expected = torch.zeros(len(a))
    taps = {3: 0, 8: 1, 15: 2, 22: 3, 29: 4}
    for index in range(30):
        if index in TORCHVISION_VGG16_CONVS:
            w, bias = vgg[f"features.{index}.weight"], vgg[f"features.{index}.bias"]
            xa, xb = nn.functional.conv2d(xa, w, bias, padding=1), nn.functional.conv2d(xb, w, bias, padding=1)
        elif index in (4, 9, 16, 23):
            xa, xb = nn.functional.max_pool2d(xa, 2), nn.functional.max_pool2d(xb, 2)
        else:
            xa, xb = xa.clamp(min=0), xb.clamp(min=0)
        if index in taps:
            na = xa / (xa.norm(dim=1, keepdim=True) + 1e-10)
            nb = xb / (xb.norm(dim=1, keepdim=True) + 1e-10)
            weight = lin[f"lin{taps[index]}.model.1.weight"].view(1, -1, 1, 1)
            expected += (weight * (na - nb) ** 2).sum(dim=1).mean(dim=(1, 2))
    torch.testing.assert_close(model(a, b), expected, rtol=1e-4, atol=1e-6)


def test_identical_images_are_at_distance_zero_and_the_distance_is_symmetric():
    model = LPIPS()
    a, b = _images(seed=3), _images(seed=4)
    assert torch.allclose(model(a, a), torch.zeros(2), atol=1e-6)
    torch.testing.assert_close(model(a, b), model(b, a))
    assert (model(a, b) > 0).all()


def test_normalize_channels_gives_unit_vectors():
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(normalize_channels(x).norm(dim=1), torch.ones(2, 3, 3), rtol=1e-5, atol=1e-5)


def test_clear_errors_for_bad_files_and_inputs(tmp_path):
    vgg_path, lin_path, vgg, _ = _weight_files(tmp_path)
    with pytest.raises(LPIPSWeightsError, match="not found"):
        LPIPS.from_files(tmp_path / "nope.pth", lin_path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(LPIPSWeightsError, match="cannot read"):
        LPIPS.from_files(tmp_path / "junk.pth", lin_path)
    with pytest.raises(LPIPSWeightsError, match="lin0.model.1.weight"):
        LPIPS.from_files(vgg_path, vgg_path)  # the two files swapped
    vgg["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(vgg, tmp_path / "grey.pth")
    with pytest.raises(LPIPSWeightsError, match=r"shape \(64, 1, 3, 3\), expected \(64, 3, 3, 3\)"):
        LPIPS.from_files(tmp_path / "grey.pth", lin_path)
    with pytest.raises(ValueError, match="one shape"):
        LPIPS()(_images(size=32), _images(size=16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LPIPS()(_images() * 255, _images() * 255)


def test_lpips_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("INPAINTLIB_LPIPS_VGG16", raising=False)
    monkeypatch.delenv("INPAINTLIB_LPIPS_LINEAR", raising=False)
    assert lpips_from_environment() is None
    vgg_path, lin_path, vgg, _ = _weight_files(tmp_path)
    monkeypatch.setenv("INPAINTLIB_LPIPS_VGG16", str(vgg_path))
    monkeypatch.setenv("INPAINTLIB_LPIPS_LINEAR", str(lin_path))
    assert torch.equal(lpips_from_environment().features[0].weight, vgg["features.0.weight"])


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    # Diagonal covariances commute: d² = ||μ1-μ2||² + Σ (sqrt(a_i) - sqrt(b_i))²
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_a_distribution_to_itself_is_zero_and_grows_with_a_shift():
    x = np.random.default_rng(0).normal(size=(500, 8)) @ np.random.default_rng(1).normal(size=(8, 8))
    mu, sigma = feature_statistics(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    shifted = feature_statistics(x + 3.0)
    assert frechet_distance(mu, sigma, *shifted) == pytest.approx(9.0 * 8, rel=1e-8)


class _MeanColour(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3), keepdim=True)  # (B, 3, 1, 1), like pytorch-fid's pool3 layout


def test_exported_extractor_round_trip_and_distance(tmp_path, monkeypatch):
    path = tmp_path / "extractor.pt2"
    example = _images(n=4, size=8)
    program = torch.export.export(_MeanColour(), (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    extractor = load_feature_extractor(path)
    images = _images(n=20, size=8, seed=5)
    assert extract_features(extractor, images, batch_size=7).shape == (20, 3)
    reference = image_statistics(extractor, images, batch_size=7)
    assert abs(frechet_distance(*reference, *image_statistics(extractor, images))) < 1e-10
    assert frechet_distance(*reference, *image_statistics(extractor, images.flip(1).clamp(0, 1) * 0.5)) > 0
    monkeypatch.setenv("INPAINTLIB_FID_EXTRACTOR", str(path))
    loaded, name = extractor_from_environment()
    assert name == "extractor.pt2"
    monkeypatch.delenv("INPAINTLIB_FID_EXTRACTOR")
    assert extractor_from_environment() is None


def test_fid_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_feature_extractor(tmp_path / "missing.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_feature_extractor(tmp_path / "state.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "state.pt2")
    with pytest.raises(ValueError, match="not an exported program"):
        load_feature_extractor(tmp_path / "state.pt2")
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_extractor_loads_too(tmp_path):
    path = tmp_path / "extractor.pt"
    torch.jit.save(torch.jit.trace(_MeanColour(), _images(n=2, size=8)), str(path))
    images = _images(n=5, size=8, seed=6)
    features = extract_features(load_feature_extractor(path), images, batch_size=2)
    torch.testing.assert_close(features, images.mean(dim=(2, 3)).double())
