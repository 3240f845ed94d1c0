import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from inpaintlib.metrics import PSNR_MAX, confusion_matrix, image_metrics, l1, mean_iou, psnr, ssim


def _pair(seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, size, size, generator=g)
    pred = (target + 0.1 * torch.randn(2, 3, size, size, generator=g)).clamp(0, 1)
    return pred, target


def test_psnr_matches_the_definition():
    pred, target = _pair()
    mse = ((pred - target) ** 2).flatten(1).mean(1)
    assert torch.allclose(psnr(pred, target), 10 * torch.log10(1 / mse))


def test_in_hole_scores_ignore_known_pixels():
    pred, target = _pair()
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:20, 8:20] = 1
    changed = pred.clone()
    changed[..., :4, :] = 0.0  # outside the hole
    assert torch.allclose(psnr(pred, target, mask), psnr(changed, target, mask))
    assert torch.allclose(l1(pred, target, mask), l1(changed, target, mask))
    hole = mask.bool().expand_as(pred)
    expected = torch.stack([(pred[i] - target[i]).abs()[hole[i]].mean() for i in range(2)])
    assert torch.allclose(l1(pred, target, mask), expected)


def test_perfect_prediction():
    _, target = _pair()
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., :10, :] = 1
    m = image_metrics(target, target, mask)
    assert torch.all(m["psnr"] == PSNR_MAX) and torch.all(m["psnr_hole"] == PSNR_MAX)
    assert torch.allclose(m["ssim"], torch.ones(2)) and torch.all(m["l1_hole"] == 0)


def test_ssim_agrees_with_scikit_image():
    pred, target = _pair(1, 48)
    ours = ssim(pred, target)
    for i in range(2):
        ref = structural_similarity(
            pred[i].permute(1, 2, 0).numpy(), target[i].permute(1, 2, 0).numpy(), channel_axis=-1,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        )
        # torchmetrics averages over the valid (unpadded) region; scikit-image crops its border too
        assert abs(float(ours[i]) - ref) < 0.02


def test_metrics_reject_bad_shapes_and_soft_masks():
    pred, target = _pair()
    with pytest.raises(ValueError, match="B, 3, H, W"):
        psnr(pred[:, :1], target[:, :1])
    with pytest.raises(ValueError, match="exactly 0"):
        image_metrics(pred, target, torch.full((2, 1, 32, 32), 0.3))


def test_confusion_and_miou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    iou = [1 / 3, 3 / 4, 1 / 2]
    assert mean_iou(cm) == pytest.approx(np.mean(iou))
