"""Probes: one small controlled benchmark per paper, where the paper's mechanism must decide the score.

| probe | papers | what the hole hides | metrics |
|---|---|---|---|
| ``copy`` | DeepFill v1 (contextual attention) | content that appears exactly elsewhere | in-hole PSNR, attention hits |
| ``regular_texture`` | CSA | a quarter of a brick wall or water surface | seam score, in-hole PSNR |
| ``boundary`` | SGE-Net, SPL | a class boundary | in-hole mIoU, boundary F-score |
| ``class_texture`` | coherence priors (SWAP), SACA | two textures, a third one close by | class texture distance, same-class attention |
| ``edges`` | LBP | straight edges and mortar lines | Canny edge F-score, LBP-histogram distance |

``make_probe(name)`` builds a probe set, ``score_probe(name, inpaint, probe)`` scores a model image by
image, ``probe_result(name, metric, with, without)`` gives the chapter's ``metrics.json`` entry.
"""

from inpaintlib.probes.probe_set import ProbeSet
from inpaintlib.probes.score import PROBES, ProbeSpec, make_probe, probe_result, score_probe

__all__ = ["PROBES", "ProbeSet", "ProbeSpec", "make_probe", "probe_result", "score_probe"]
