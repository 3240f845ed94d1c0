"""inpaintlib: the shared library of the semantic-aware inpainting book.

Conventions used everywhere:
- images are float tensors ``(B, 3, H, W)`` in ``[0, 1]``;
- masks are float tensors ``(B, 1, H, W)`` with 1 = missing (hole), 0 = known;
- label maps are long tensors ``(B, H, W)`` with values in ``[0, K)``.
"""

__version__ = "0.1.0"
