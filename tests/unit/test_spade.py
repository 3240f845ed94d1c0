import pytest
import torch
import torch.nn.functional as F

from inpaintlib.nn.spade import SPADE, SGMBlock


def _instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _batch_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _upsample_by_repeat(seg: torch.Tensor, factor: int) -> torch.Tensor:
    return seg.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


@pytest.mark.parametrize("norm, reference", [("instance", _instance_norm), ("batch", _batch_norm)])
def test_zero_initialised_spade_is_the_plain_norm(norm, reference):
    torch.manual_seed(0)
    spade = SPADE(6, 4, hidden=8, norm=norm, zero_init=True).train()
    x = torch.randn(3, 6, 8, 8) * 3 + 1
    seg = torch.rand(3, 4, 4, 4)
    torch.testing.assert_close(spade(x, seg), reference(x), atol=1e-5, rtol=1e-5)


def test_spade_matches_the_formula_with_an_independent_resize():
    torch.manual_seed(1)
    spade = SPADE(5, 3, hidden=7)
    x, seg = torch.randn(2, 5, 8, 8), torch.rand(2, 3, 4, 4)
    big = _upsample_by_repeat(seg, 2)  # nearest 2x by hand
    hidden = F.relu(F.conv2d(big, spade.shared[0].weight, spade.shared[0].bias, padding=1))
    gamma = F.conv2d(hidden, spade.gamma.weight, spade.gamma.bias, padding=1)
    beta = F.conv2d(hidden, spade.beta.weight, spade.beta.bias, padding=1)
    expected = _instance_norm(x) * (1 + gamma) + beta
    torch.testing.assert_close(spade(x, seg), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(spade(x, seg), _instance_norm(x), atol=1e-3)  # modulation does something


def test_zero_init_still_learns_the_modulation():
    torch.manual_seed(2)
    spade = SPADE(4, 3, hidden=6, zero_init=True)
    x, seg = torch.randn(2, 4, 6, 6), torch.rand(2, 3, 6, 6)
    (spade(x, seg) * torch.randn(2, 4, 6, 6)).sum().backward()
    assert spade.gamma.weight.grad.abs().sum() > 0 and spade.beta.weight.grad.abs().sum() > 0


def test_zero_initialised_sgm_block_is_a_plain_residual_block():
    torch.manual_seed(3)
    block = SGMBlock(4, 3, hidden=5, zero_init=True)
    x, seg = torch.randn(2, 4, 8, 8), torch.rand(2, 3, 2, 2)
    h = F.conv2d(F.relu(_instance_norm(x)), block.conv1.weight, block.conv1.bias, padding=1)
    expected = x + F.conv2d(F.relu(_instance_norm(h)), block.conv2.weight, block.conv2.bias, padding=1)
    torch.testing.assert_close(block(x, seg), expected, atol=1e-5, rtol=1e-5)


def test_clear_errors():
    spade = SPADE(4, 3, hidden=5)
    with pytest.raises(ValueError, match="features"):
        spade(torch.randn(1, 5, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="segmentation"):
        spade(torch.randn(1, 4, 4, 4), torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="batch"):
        spade(torch.randn(2, 4, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="norm"):
        SPADE(4, 3, norm="layer")
