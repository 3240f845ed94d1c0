"""Shared losses: hand-computed masked L1 and the hinge GAN round with a mask-conditioned critic."""

import torch
from torch import nn

from inpaintlib.losses import hinge_d_loss, hinge_g_loss, hole_l1, mask_conditioned_hinge, valid_l1


def test_masked_l1_is_a_mean_over_the_region():
    pred, target = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    target[..., 0, 0] = 3.0
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, 0] = 1.0
    assert float(hole_l1(pred, target, mask)) == 3.0
    assert float(valid_l1(pred, target, mask)) == 1.0


def test_mask_conditioned_hinge_steps_the_critic_then_scores_the_composite():
    torch.manual_seed(0)
    critic = nn.Conv2d(4, 1, 1)
    image, mask = torch.rand(2, 3, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    composed = torch.rand(2, 3, 4, 4, requires_grad=True)
    optimiser = torch.optim.SGD(critic.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    seen = {}

    def update(name, terms):
        seen[name] = terms
        total = sum(terms.values())
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        return total

    g_term = mask_conditioned_hinge(critic, image, composed, mask, update)
    expected_d = hinge_d_loss(nn.functional.conv2d(torch.cat([image, mask], 1), before["weight"], before["bias"]),
                              nn.functional.conv2d(torch.cat([composed, mask], 1), before["weight"], before["bias"]))
    torch.testing.assert_close(seen["d"]["hinge"], expected_d)
    assert composed.grad is None, "the critic's step must not reach the generator's output"
    assert not torch.equal(critic.weight, before["weight"])
    torch.testing.assert_close(g_term, hinge_g_loss(critic(torch.cat([composed, mask], 1))))
    g_term.backward()
    assert composed.grad is not None and composed.grad.abs().sum() > 0
