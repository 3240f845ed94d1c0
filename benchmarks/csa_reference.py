"""Plain-loop reference of Coherent Semantic Attention, a literal reading of the official ``CSAFunction.forward``
(KumapowerLIU/CSA-inpainting, ``models/CSAFunction.py``), as described in ``inpaintlib/attention/csa.py``.

Per sample and per position in raster order, like the official ``CSAFunction.forward``: keys are
normalised one by one, each query is scored against all known keys, each hole pixel mixes the
previous generated patch with its best match, and the output is the dense attention sum
``out[:, q] = sum_p W[q, p] F[:, p]`` (the official ConvTranspose2d over all N raw patches).
Shared by ``tests/unit/test_csa_attention.py`` and ``benchmarks/bench_csa.py``; slow on purpose.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ReferenceCSA(NamedTuple):
    """Outputs of :func:`csa_reference`; per-position maps are (B,N) in raster order."""

    out: Tensor  # (B,C,H,W)
    attention: Tensor  # (B,N,N), W[q, p]
    best_match: Tensor  # (B,N) long, raster index of the best known position
    d_max: Tensor  # (B,N)
    d_ad: Tensor  # (B,N), 0 where undefined (known positions, first hole pixel)
    weight_previous: Tensor  # (B,N), a; 0 at known positions and the first hole pixel
    weight_match: Tensor  # (B,N), c; 1 at known positions and the first hole pixel


def csa_reference(features: Tensor, mask_feat: Tensor, *, clamp_weights: bool = False) -> ReferenceCSA:
    """Loop reference of CSA. features (B,C,H,W); mask_feat (B,1,H,W) with 1 = hole."""
    batch, channels, height, width = features.shape
    positions = height * width
    outs, attentions, best_matches, d_maxs, d_ads, weights_previous, weights_match = [], [], [], [], [], [], []
    for b in range(batch):
        columns = [features[b, :, q // width, q % width] for q in range(positions)]
        is_hole = [bool(mask_feat[b, 0, q // width, q % width] == 1) for q in range(positions)]
        known = [q for q in range(positions) if not is_hole[q]]
        if not known:
            raise ValueError(f"sample {b} has no known position")
        kernels = torch.stack([columns[j] / (columns[j].norm(2) + 1e-8) for j in known])  # (K,C)

        best_match = [0] * positions
        d_max = [features.new_zeros(())] * positions
        for q in range(positions):
            scores = kernels @ columns[q]  # <F_q, k_j/(||k_j||+1e-8)>, query not normalised
            score_list = scores.tolist()
            j_best = max(range(len(known)), key=score_list.__getitem__)  # first maximum
            best_match[q] = known[j_best]
            d_max[q] = scores[j_best]

        attention = features.new_zeros(positions, positions)
        d_ad = features.new_zeros(positions)
        weight_previous = features.new_zeros(positions)
        weight_match = features.new_ones(positions)
        previous_generated = None
        previous_row = None
        for q in range(positions):
            matched = columns[best_match[q]]
            if not is_hole[q]:
                attention[q, best_match[q]] = 1
                continue
            if previous_generated is None:  # first hole pixel: a copy of its best match
                generated = matched.clone()
                row = features.new_zeros(positions)
                row[best_match[q]] = 1
            else:
                u = columns[q]
                similarity_adjacent = previous_generated @ (u / (u.norm(2) + 1e-8))
                similarity_max = d_max[q]
                if clamp_weights:
                    ad_pos = torch.clamp(similarity_adjacent, min=0)
                    max_pos = torch.clamp(similarity_max, min=0)
                    a = ad_pos / (ad_pos + max_pos + 1e-8)
                    c = 1 - a
                else:
                    a = similarity_adjacent / (similarity_adjacent + similarity_max)
                    c = similarity_max / (similarity_adjacent + similarity_max)
                generated = a * previous_generated + c * matched
                row = previous_row * a
                row[best_match[q]] = row[best_match[q]] + c
                d_ad[q] = similarity_adjacent
                weight_previous[q] = a
                weight_match[q] = c
            attention[q] = row
            previous_generated, previous_row = generated, row

        flat = torch.stack(columns, dim=1)  # (C,N)
        out = flat.new_zeros(channels, positions)
        for q in range(positions):
            out[:, q] = (flat * attention[q]).sum(1)  # sum_p W[q, p] F[:, p]
        outs.append(out.reshape(channels, height, width))
        attentions.append(attention)
        best_matches.append(torch.tensor(best_match))
        d_maxs.append(torch.stack(d_max))
        d_ads.append(d_ad)
        weights_previous.append(weight_previous)
        weights_match.append(weight_match)
    return ReferenceCSA(
        out=torch.stack(outs),
        attention=torch.stack(attentions),
        best_match=torch.stack(best_matches),
        d_max=torch.stack(d_maxs),
        d_ad=torch.stack(d_ads),
        weight_previous=torch.stack(weights_previous),
        weight_match=torch.stack(weights_match),
    )
