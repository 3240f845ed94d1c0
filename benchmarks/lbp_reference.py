"""Plain-loop references of the LBP map and the LBP spatial attention (shared by tests and the benchmark).

They follow the definitions pixel by pixel, independently of ``inpaintlib.lbp`` and
``inpaintlib.attention.lbp_spatial``: no rolls, no padding, no chunked similarity matrices.
"""

import numpy as np
import torch
from torch import Tensor

# (row offset, column offset, bit weight), clockwise from the top-right neighbour [official code] ``main.py::MyDataset.load_lbp``
NEIGHBOURS = ((-1, 1, 1), (0, 1, 2), (1, 1, 4), (1, 0, 8), (1, -1, 16), (0, -1, 32), (-1, -1, 64), (-1, 0, 128))


def lbp_codes_loop(gray: np.ndarray, border: str = "official") -> np.ndarray:
    """Per-pixel LBP of one (H, W) uint8 image; returns (H, W) int64 codes.

    official: a neighbour row/col of -1 is read from the last row/col, a row H or col W gives bit 0.
    zero: a neighbour outside the image has gray level 0.
    """
    height, width = gray.shape
    pixels = gray.astype(np.int64).tolist()  # Python lists: fast scalar access
    codes = [[0] * width for _ in range(height)]
    for r in range(height):
        for c in range(width):
            centre = pixels[r][c]
            code = 0
            for dr, dc, weight in NEIGHBOURS:
                rr, cc = r + dr, c + dc
                if border == "official":
                    if rr >= height or cc >= width:
                        continue
                    neighbour = pixels[rr if rr >= 0 else height - 1][cc if cc >= 0 else width - 1]
                else:
                    inside = 0 <= rr < height and 0 <= cc < width
                    neighbour = pixels[rr][cc] if inside else 0
                if neighbour >= centre:
                    code += weight
            codes[r][c] = code
    return np.array(codes, dtype=np.int64)


def hole_flags_loop(mask: Tensor, height: int, width: int) -> list[list[bool]]:
    """Nearest downsampling of (B, 1, H', W') to per-sample lists of H*W hole flags (src = floor(dst * H'/H))."""
    mask_height, mask_width = mask.shape[-2:]
    return [
        [
            bool(mask[b, 0, (r * mask_height) // height, (c * mask_width) // width] == 1)
            for r in range(height)
            for c in range(width)
        ]
        for b in range(mask.shape[0])
    ]


def spatial_attention_loop(
    generated: Tensor, known: Tensor, mask: Tensor, top_t: int = 2, within_hole: bool = True, eps: float = 1e-8
) -> tuple[Tensor, list[dict]]:
    """Loop reference of the spatial attention forward, per sample and per hole position, in float64.

    Each hole query scores all its candidate sources with one vector product; the top-T choice, the rank means,
    the softmax and the fusion are plain loops.

    Returns:
        output (B, 3C, H, W) = cat(generated, known, shifted) in float64, and per sample a dict with
        ``known_sources`` / ``hole_sources``: {hole position: [T flat source positions, best first]},
        ``known_cosines`` / ``hole_cosines``: {hole position: [T cosines]} and ``weights``: list of 2T (or T) floats.
    """
    batch, channels, height, width = generated.shape
    flags = hole_flags_loop(mask, height, width)
    shifted = torch.zeros(batch, channels, height * width, dtype=torch.float64)
    selections = []
    for b in range(batch):
        g = generated[b].reshape(channels, -1).double()  # (C,N)
        k = known[b].reshape(channels, -1).double()
        holes = [i for i, is_hole in enumerate(flags[b]) if is_hole]
        knowns = [j for j, is_hole in enumerate(flags[b]) if not is_hole]
        kinds = [("known", knowns, k, k)] + ([("hole", holes, g, g)] if within_hole else [])
        selection = {}
        for name, candidates, source_features, value_features in kinds:
            sources, cosines = {}, {}
            candidate_features = source_features[:, candidates]  # (C,M)
            candidate_norms = candidate_features.norm(dim=0)  # (M,)
            for i in holes:
                query = g[:, i]
                scores = (query @ candidate_features) / ((query.norm() + eps) * (candidate_norms + eps))  # (M,)
                order = torch.argsort(scores, descending=True, stable=True)[:top_t].tolist()
                sources[i] = [candidates[m] for m in order]
                cosines[i] = [float(scores[m]) for m in order]
            selection[f"{name}_sources"] = sources
            selection[f"{name}_cosines"] = cosines
        rank_means = [
            sum(selection[f"{name}_cosines"][i][t] for i in holes) / max(len(holes), 1)
            for name, *_ in kinds
            for t in range(top_t)
        ]
        exps = [float(np.exp(m)) for m in rank_means]
        weights = [e / sum(exps) for e in exps]
        selection["weights"] = weights
        for i in holes:
            for kind_index, (name, _, _, value_features) in enumerate(kinds):
                for t, j in enumerate(selection[f"{name}_sources"][i]):
                    shifted[b, :, i] += weights[kind_index * top_t + t] * value_features[:, j]
        selections.append(selection)
    output = torch.cat([generated.double(), known.double(), shifted.view(batch, channels, height, width)], 1)
    return output, selections


def official_backward_loop(grad_output: Tensor, selections: list[dict], mask: Tensor) -> tuple[Tensor, Tensor]:
    """Loop form of the official backward: returns (grad generated, grad known), both (B, C, H, W).

    grad generated = first C channels; grad known = middle C channels + for every hole query i and every
    one of its selected sources j (hole->known and hole->hole alike): grad(shifted)(i) added at j, unweighted.
    """
    batch, three_channels, height, width = grad_output.shape
    channels = three_channels // 3
    flags = hole_flags_loop(mask, height, width)
    grad_generated = grad_output[:, :channels].clone()
    grad_known = grad_output[:, channels : 2 * channels].clone().reshape(batch, channels, -1)
    grad_shifted = grad_output[:, 2 * channels :].reshape(batch, channels, -1)
    for b in range(batch):
        for i in (i for i, is_hole in enumerate(flags[b]) if is_hole):
            for key in ("known_sources", "hole_sources"):
                for j in selections[b].get(key, {}).get(i, []):
                    grad_known[b, :, j] += grad_shifted[b, :, i]
    return grad_generated, grad_known.view(batch, channels, height, width)
