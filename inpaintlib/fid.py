"""Fréchet distance between feature distributions: FID when the features are Inception's, supplied by the user.

FID (Heusel et al., NeurIPS 2017) is the Fréchet distance between Gaussians fitted to the 2048-d
pool3 features of an ImageNet Inception-v3 on real and generated images [paper]::

    d² = ||μ_r − μ_g||² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

The Inception weights cannot be downloaded here, so the extractor is a file the user supplies: a
``torch.export`` program saved as ``.pt2`` (for example pytorch-fid's ``InceptionV3([3])``, exported
with a dynamic batch dimension) or a TorchScript file, taking images (B, 3, H, W) in [0, 1] and
returning features (B, D) (or (B, D, 1, 1)). Set ``INPAINTLIB_FID_EXTRACTOR`` or call
:func:`load_feature_extractor`. The book cannot check which network a file holds, so results
are labelled with the file's name; the number is FID only if the file is that Inception.

Tr((Σ_r Σ_g)^{1/2}) is computed as Σ sqrt(eig(Σ_r^{1/2} Σ_g Σ_r^{1/2})), a symmetric positive
semi-definite matrix with the same eigenvalues as Σ_r Σ_g, so no complex square root is needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from inpaintlib.checks import check_image

EXTRACTOR_ENV_VAR = "INPAINTLIB_FID_EXTRACTOR"
Extractor = Callable[[torch.Tensor], torch.Tensor]


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and covariance (D, D), float64 (unbiased, as ``np.cov``)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding-error eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d² between N(mu1, sigma1) and N(mu2, sigma2) (the formula above)."""
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: {mu1.shape} / {sigma1.shape} vs {mu2.shape} / {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    inner = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def load_feature_extractor(path: str | Path, device: torch.device | str = "cpu") -> Extractor:
    """The extractor in ``path``: ``.pt2`` (``torch.export.save``) or TorchScript; one line names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"feature extractor not found: {path}")
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module().to(device)
        return torch.jit.load(str(path), map_location=device).eval()
    except Exception as err:
        kind = "an exported program (torch.export.save)" if path.suffix == ".pt2" else "a TorchScript file (torch.jit.save)"
        raise ValueError(f"{path} is not {kind}: {type(err).__name__}: {str(err).strip().splitlines()[0][:200]}") from err


@torch.no_grad()
def extract_features(extractor: Extractor, images: torch.Tensor, batch_size: int = 50,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] -> features (N, D), in batches."""
    check_image(images, "images")
    chunks = []
    for start in range(0, len(images), batch_size):
        out = extractor(images[start:start + batch_size].to(device))
        out = out.reshape(out.shape[0], -1)  # pytorch-fid's pool3 output is (B, 2048, 1, 1)
        chunks.append(out.double().cpu())
    return torch.cat(chunks)


def image_statistics(extractor: Extractor, images: torch.Tensor, batch_size: int = 50,
                     device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the extractor's features of ``images`` (N, 3, H, W): one side of
    :func:`frechet_distance`, so a reference set is extracted once for many compared sets."""
    return feature_statistics(extract_features(extractor, images, batch_size, device))


def extractor_from_environment(device: torch.device | str = "cpu") -> tuple[Extractor, str] | None:
    """The extractor named by ``INPAINTLIB_FID_EXTRACTOR`` and its file name, or ``None`` when unset."""
    path = os.environ.get(EXTRACTOR_ENV_VAR)
    if not path:
        return None
    return load_feature_extractor(path, device), Path(path).name
